"""Plumbing of the external-command target: the profile's `options` read into a CommandSpec,
placeholders filled in, the executable found, one invocation run and its output read.

Nothing here goes through a shell: a command is an argument list, every placeholder is
replaced inside its own argument (no word splitting, no globbing, no `$(...)`), and the model
path is always one argument of its own.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwofa.common import UserError
from profiler.profiles import PRECISIONS, DeviceProfile

TRUST_FLAG = "--trust-device-command"
KNOWN_OPTIONS = {"command", "prepare_command", "latency_regex", "latency_unit", "p90_regex", "device_regex",
                 "device_command", "version_command", "timeout_s", "invocations", "precisions", "runs_on_host"}
PLACEHOLDERS = ("model", "model_name", "threads", "batch", "precision", "python", "python_bin")
MODEL_PLACEHOLDERS = ("model", "model_name")
UNITS_MS = {"s": 1e3, "sec": 1e3, "ms": 1.0, "msec": 1.0, "us": 1e-3, "µs": 1e-3, "usec": 1e-3, "ns": 1e-6}
DEFAULT_TIMEOUT_S = 300.0
TAIL_LINES = 8
_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


@dataclass(frozen=True)
class CommandSpec:
    """A command profile's options, checked. Argument lists still hold their placeholders."""

    argv: tuple[str, ...]
    prepare: tuple[str, ...] | None
    latency: re.Pattern[str]
    unit: str
    p90: re.Pattern[str] | None
    device: re.Pattern[str] | None
    device_command: tuple[str, ...] | None
    version_command: tuple[str, ...] | None
    timeout_s: float
    invocations: int
    precisions: tuple[str, ...]
    runs_on_host: bool

    @property
    def line(self) -> str:
        """The command as one shell-quoted line (what `hwofa devices` shows)."""
        return shlex.join(self.argv)


def where(profile: DeviceProfile) -> str:
    return f"device '{profile.name}' (profile {profile.path or 'built in memory'})"


def read_spec(profile: DeviceProfile) -> CommandSpec:
    """The profile's options as a CommandSpec; a UserError names the first problem (and the profile)."""
    opts, at = profile.options, where(profile)
    unknown = sorted(set(opts) - KNOWN_OPTIONS)
    if unknown:
        raise UserError(f"{at}: unknown option(s) {unknown} for the command backend; known: {sorted(KNOWN_OPTIONS)}.")
    argv = _argv(opts.get("command"), "command", at, required=True)
    prepare = _argv(opts.get("prepare_command"), "prepare_command", at)
    if not any(f"{{{p}}}" in a for a in argv + (prepare or ()) for p in MODEL_PLACEHOLDERS):
        raise UserError(f"{at}: options.command never names the model file; put the placeholder {{model}} where "
                        f"the command takes its ONNX file (e.g. [trtexec, '--onnx={{model}}']).")
    unit = str(opts.get("latency_unit", "ms"))
    if unit not in UNITS_MS:
        raise UserError(f"{at}: options.latency_unit '{unit}' is not one of {sorted(UNITS_MS)}.")
    timeout_s, invocations = opts.get("timeout_s", DEFAULT_TIMEOUT_S), opts.get("invocations", 3)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s < math.inf:
        raise UserError(f"{at}: options.timeout_s must be a positive number of seconds, got {timeout_s!r}.")
    if isinstance(invocations, bool) or not isinstance(invocations, int) or invocations < 1:
        raise UserError(f"{at}: options.invocations must be an integer >= 1, got {invocations!r}.")
    precisions = opts.get("precisions", ["fp32"])
    if not isinstance(precisions, list) or not precisions or not set(precisions) <= set(PRECISIONS):
        raise UserError(f"{at}: options.precisions must be a list drawn from {list(PRECISIONS)} (the precisions "
                        f"the command honours), got {precisions!r}.")
    return CommandSpec(
        argv=argv, prepare=prepare, unit=unit, timeout_s=float(timeout_s), invocations=invocations,
        latency=_regex(opts.get("latency_regex"), "latency_regex", "ms", at, required=True),
        p90=_regex(opts.get("p90_regex"), "p90_regex", "ms", at),
        device=_regex(opts.get("device_regex"), "device_regex", "device", at),
        device_command=_argv(opts.get("device_command"), "device_command", at, model=False),
        version_command=_argv(opts.get("version_command"), "version_command", at, model=False),
        precisions=tuple(precisions), runs_on_host=bool(opts.get("runs_on_host", False)))


def _argv(value: Any, key: str, at: str, required: bool = False, model: bool = True) -> tuple[str, ...] | None:
    if value is None and not required:
        return None
    if isinstance(value, str):
        raise UserError(f"{at}: options.{key} is a string ({value!r}); write it as a YAML list of arguments, one "
                        f"item per argument, e.g. {shlex.split(value) if _splits(value) else ['prog', '-m', '{model}']}"
                        " (hwofa never hands a command to a shell).")
    if not isinstance(value, list) or not value or not all(isinstance(a, (str, int, float)) for a in value):
        raise UserError(f"{at}: options.{key} must be a non-empty list of arguments (strings), got {value!r}.")
    argv = tuple(str(a) for a in value)
    names = PLACEHOLDERS if model else tuple(p for p in PLACEHOLDERS if p not in MODEL_PLACEHOLDERS)
    for arg in argv:
        for m in _FIELD.finditer(arg):
            if m.group(1) is not None and m.group(1) not in names:
                raise UserError(f"{at}: options.{key} has the unknown placeholder {{{m.group(1)}}} in {arg!r}; "
                                f"known: {', '.join('{' + n + '}' for n in names)} (write {{{{ and }}}} for a "
                                "literal brace).")
    return argv


def _splits(text: str) -> bool:
    try:
        return bool(shlex.split(text))
    except ValueError:
        return False


def _regex(value: Any, key: str, group: str, at: str, required: bool = False) -> re.Pattern[str] | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise UserError(f"{at}: options.{key} must be a regular expression (a string) with a named group "
                        f"(?P<{group}>...), got {value!r}.")
    try:
        pattern = re.compile(value, re.MULTILINE)
    except re.error as exc:
        raise UserError(f"{at}: options.{key} is not a valid regular expression ({exc}): {value!r}.") from None
    if group not in pattern.groupindex:
        raise UserError(f"{at}: options.{key} needs a named group (?P<{group}>...) around the value; got {value!r}.")
    return pattern


# ---- placeholders and the executable ----------------------------------------------------------
def fill(argv: tuple[str, ...], values: dict[str, str]) -> list[str]:
    """Each argument with its placeholders replaced; `{{`/`}}` are literal braces. No splitting."""
    def one(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return m.group(0)[0]
        return values[m.group(1)]
    return [_FIELD.sub(one, a) for a in argv]


def placeholder_values(profile: DeviceProfile, model: str | None = None) -> dict[str, str]:
    values = {"threads": str(profile.threads), "batch": str(profile.batch_size), "precision": profile.precision,
              "python": sys.executable, "python_bin": str(Path(sys.executable).parent)}
    if model is not None:
        values["model"], values["model_name"] = model, Path(model).name
    return values


def resolve(program: str, at: str, key: str = "command") -> str:
    """The executable to run. A name with a path separator is used as it is; a bare name is looked
    up in the running interpreter's bin folder first (a venv's console scripts, e.g. benchmark_app,
    work without activating it), then on PATH."""
    if os.sep in program or (os.altsep and os.altsep in program):
        path = Path(program).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        why = "is not executable" if path.is_file() else "does not exist"
        raise UserError(f"{at}: the program of options.{key}, '{program}', {why}.")
    beside = Path(sys.executable).parent / program
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(program)
    if found is None:
        raise UserError(f"{at}: the program of options.{key}, '{program}', was not found (looked in "
                        f"{beside.parent} and on PATH); install it or give its full path in the profile.")
    return found


# ---- one invocation ---------------------------------------------------------------------------
def run_argv(argv: list[str], timeout_s: float, at: str, key: str = "command") -> str:
    """Run `argv` (no shell) and return its stdout followed by its stderr. A missing program, a
    non-zero exit or a timeout is a UserError naming the command and the profile. The command runs
    in its own process group, which is killed on timeout or interrupt (an ssh or a wrapper script
    leaves no orphans behind)."""
    shown = shlex.join(argv)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, errors="replace", start_new_session=True)
    except OSError as exc:
        raise UserError(f"{at}: options.{key} could not be started ({exc.strerror or exc}): {shown}") from None
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise UserError(f"{at}: the command did not finish within {timeout_s:g} s (options.timeout_s) and was "
                        f"stopped: {shown}") from None
    except BaseException:
        _kill(proc)
        raise
    if proc.returncode != 0:
        said = f"The last lines of its stderr: {tail(err)}" if err.strip() else \
            f"Its stderr is empty; the last lines of its stdout: {tail(out) or '(empty)'}"
        raise UserError(f"{at}: the command exited with status {proc.returncode}: {shown}. {said}")
    return f"{out}\n{err}"


def _kill(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.communicate()


def tail(text: str, n: int = TAIL_LINES) -> str:
    lines = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


# ---- reading the output -------------------------------------------------------------------------
def read_ms(pattern: re.Pattern[str], default_unit: str, output: str, at: str) -> float | None:
    """The value of the last match of `pattern` in ms (its `unit` group, else the declared unit);
    None when nothing matches or the value is not a number >= 0."""
    matches = list(pattern.finditer(output))
    last = matches[-1] if matches else None
    if last is None or last.group("ms") is None:
        return None
    unit = (last.groupdict().get("unit") or default_unit).strip()
    scale = UNITS_MS.get(unit, UNITS_MS.get(unit.lower()))
    if scale is None:
        raise UserError(f"{at}: the command reported the latency unit '{unit}', which hwofa does not know "
                        f"({sorted(UNITS_MS)}); fix the unit group of the regex or set options.latency_unit.")
    try:
        value = float(last.group("ms").replace(",", "")) * scale
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def read_device(pattern: re.Pattern[str] | None, output: str) -> str | None:
    if pattern is None:
        return None
    m = pattern.search(output)
    return m.group("device").strip() if m and m.group("device") else None
