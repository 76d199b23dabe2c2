"""The external-command target (DESIGN §5): a model file is handed to a command that runs it on a
device hwofa cannot run in-process (OpenVINO's `benchmark_app`, `trtexec`, a board over ssh),
and the latency the command prints is read back.

The profile's `options` say how (schema in device_profiles/README.md, "External commands"):
`command` (an argument list with placeholders such as `{model}`), `latency_regex` (a named
group `ms`, optionally `unit`), and optionally `prepare_command` (run once per model before its
invocations, e.g. scp to a board), `p90_regex`, `device_regex`, `device_command`,
`version_command`, `timeout_s`, `invocations`, `precisions`, `runs_on_host`.

Timing: every model is run in `invocations` separate invocations (default 3). Models are taken
in pools of POOL; each pass runs one invocation of every model of the pool in a fresh random
order, so slow drift of the device spreads evenly over them. A model's p50 is the median of its
invocations' reported latencies; its p90 is the median of the reported p90s when `p90_regex` is
given, else the largest reported latency; `spread` is max/min - 1 of the invocations, and the
figure is `converged` when that spread is within the profile's `timing.agree` (one invocation
cannot disagree with itself: the command's own statistics are then trusted). The command is
expected to warm up and repeat the model itself (benchmark_app and trtexec do).

Trust: a profile's command is code. It is run only when the profile ships with hwofa (its
YAML lies in `device_profiles/`) or the user confirms it with `--trust-device-command`
(`load_profile(..., trust_command=True)` sets `DeviceProfile.trusted`). Every subprocess,
including the version and device probes, goes through `_ready()`, which refuses otherwise.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import shlex
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hwofa.common import UserError
from profiler.backends._command import (
    TRUST_FLAG,
    CommandSpec,
    fill,
    placeholder_values,
    read_device,
    read_ms,
    read_spec,
    resolve,
    run_argv,
    tail,
    where,
)
from profiler.backends.base import ModelSource, OnDone, Target
from profiler.profiles import PRECISIONS
from profiler.timing import Timing

log = logging.getLogger(__name__)
POOL = 16  # models whose invocations are interleaved with each other
Invocation = tuple[float, float | None]  # (latency ms, reported p90 ms or None)


class CommandTarget(Target):
    name = "command"
    kind = "command"
    source = "measured"
    precisions = PRECISIONS  # what a profile may ask for; `options.precisions` says what its command honours

    def __init__(self, profile) -> None:
        super().__init__(profile)
        self._spec: CommandSpec | None = None
        self._version: str | None = None
        self._device: str | None = None

    # ---- what it is ----------------------------------------------------------------------
    @property
    def spec(self) -> CommandSpec:
        if self._spec is None:
            self._spec = read_spec(self.profile)
        return self._spec

    def available(self) -> tuple[bool, str]:
        try:
            self._ready()
            self._programs()
        except UserError as exc:  # get_target puts "device '<name>' cannot run on this machine: " before it
            why = re.sub(r"^device '[^']*'(?: \(profile [^)]*\))?: ", "", str(exc)).rstrip(".")
            return False, why if self.profile.path in why else f"{why} (profile {self.profile.path})"
        return True, ""

    def describe(self) -> str:
        """The command line, placeholders and all (shell-quoted for reading; it never goes through a shell)."""
        try:
            return self.spec.line
        except UserError:
            return f"command (invalid options: {self.profile.options.get('command')!r})"

    def precision_problem(self) -> str | None:
        honoured = self._honoured()
        if self.profile.precision not in honoured:
            return (f"its command honours {', '.join(honoured)} (options.precisions), not {self.profile.precision}; "
                    "list the precision there once the command runs it (e.g. with {precision} in its arguments)")
        return None

    def _honoured(self) -> tuple[str, ...]:
        try:
            return self.spec.precisions
        except UserError:
            return ("fp32",)

    def version(self) -> str:
        """The first line `version_command` prints; without one, the executable's path and content hash
        (a new build of the program makes a cached table stale, a new version of what it loads may not)."""
        if self._version is None:
            spec = self._ready()
            if spec.version_command is not None:
                out = self._run(spec.version_command, "version_command")
                lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
                self._version = (lines[0] if lines else "unknown (version_command printed nothing)")[:200]
            else:
                exe = self._programs()[0]
                digest = hashlib.sha256(Path(exe).read_bytes()).hexdigest()[:12]
                self._version = f"unknown (no options.version_command; {exe} sha256 {digest})"
        return self._version

    def depends_on(self) -> dict[str, Any]:
        """The version, the executable, this host's CPU when the command runs here (`runs_on_host`) and
        the device the command reports (`device_regex`): a table measured on another board is not reused."""
        spec = self._ready()
        deps: dict[str, Any] = {"target": self.name, "version": self.version(), "executable": self._programs()[0]}
        if spec.runs_on_host:
            from profiler.provenance import host_info

            deps["cpu"] = host_info()["cpu"]
        if spec.device is not None:
            deps["device"] = self.reported_device()
        return deps

    def reported_device(self) -> str | None:
        """The device the command says it runs on: `device_regex` on the output of `device_command`, or
        without one, of the command itself run once on a tiny model (and then every invocation's output
        is checked against it). None without a `device_regex`."""
        spec = self._ready()
        if spec.device is None:
            return None
        if self._device is None:
            if spec.device_command is not None:
                out, what = self._run(spec.device_command, "device_command"), "device_command"
            else:
                out, what = self._probe(), "command (run on a tiny probe model)"
            self._device = read_device(spec.device, out)
            if self._device is None:
                raise UserError(f"{where(self.profile)}: options.device_regex {spec.device.pattern!r} matched "
                                f"nothing in the output of the {what}. The last lines of its output: {tail(out)}")
        return self._device

    # ---- costing -------------------------------------------------------------------------
    def cost_many(self, models: dict[str, ModelSource], rng: random.Random, on_done: OnDone | None = None,
                  progress: bool = True, desc: str = "measure", deadline: float | None = None) -> dict[str, Timing]:
        spec = self._ready()
        self._programs()  # a missing program is said before any model is written
        if spec.device is not None:
            self.reported_device()
        keys, results = list(models), {}
        with tempfile.TemporaryDirectory(prefix="hwofa-command-") as tmp, \
                tqdm(total=len(keys) * spec.invocations, desc=desc, disable=not progress, unit="run") as bar:
            for start in range(0, len(keys), POOL):
                pool = keys[start:start + POOL]
                paths = {k: _write(Path(tmp), start + i, k, models[k]()) for i, k in enumerate(pool)}
                for path in paths.values():
                    self._prepare(spec, path)
                results.update(self._measure_pool(pool, paths, spec, rng, on_done, bar, deadline))
        return results

    def _measure_pool(self, pool: list[str], paths: dict[str, Path], spec: CommandSpec, rng: random.Random,
                      on_done: OnDone | None, bar: Any, deadline: float | None) -> dict[str, Timing]:
        """`spec.invocations` passes over the pool, each in a fresh random order; a model is finished
        (and reported through `on_done`) right after its last invocation. A pass that starts past
        `deadline` is the last: every model keeps what it has, marked not converged."""
        runs: dict[str, list[Invocation]] = {k: [] for k in pool}
        done: dict[str, Timing] = {}
        for n in range(spec.invocations):
            last = n == spec.invocations - 1 or (deadline is not None and time.monotonic() > deadline)
            order = list(pool)
            rng.shuffle(order)
            for key in order:
                runs[key].append(self._invoke(spec, paths[key]))
                bar.update(1)
                if last:
                    done[key] = summarize(runs[key], self.profile.timing.agree, spec.invocations)
                    paths[key].unlink(missing_ok=True)
                    if on_done is not None:
                        on_done(key, done[key], [])
            if last:
                bar.update((spec.invocations - n - 1) * len(pool))  # the passes a deadline cut off
                break
        return done

    def _invoke(self, spec: CommandSpec, model: Path) -> Invocation:
        argv = fill(spec.argv, placeholder_values(self.profile, str(model)))
        argv[0] = resolve(argv[0], where(self.profile))
        out = run_argv(argv, spec.timeout_s, where(self.profile))
        ms = read_ms(spec.latency, spec.unit, out, where(self.profile))
        if ms is None:
            raise UserError(f"{where(self.profile)}: the command printed no latency matching options.latency_regex "
                            f"{spec.latency.pattern!r}: {shlex.join(argv)}. The last lines of its output: {tail(out)}")
        if ms == 0:
            raise UserError(f"{where(self.profile)}: the command reported a latency of 0: {shlex.join(argv)}. hwofa "
                            "needs a positive figure; make the command print it with more resolution (e.g. in us).")
        p90 = read_ms(spec.p90, spec.unit, out, where(self.profile)) if spec.p90 is not None else None
        device = read_device(spec.device, out) if spec.device_command is None else None
        if device is not None and self._device is not None and device != self._device:
            raise UserError(f"{where(self.profile)}: the command reported the device '{device}', but the build began "
                            f"on '{self._device}'; figures of two devices cannot share one table. Make the command "
                            "reach one device and run again.")
        log.debug("%s: %.4f ms (%s)", model.name, ms, argv[0])
        return ms, p90

    # ---- running what the profile names ------------------------------------------------------
    def _ready(self) -> CommandSpec:
        """The checked options, once the profile is trusted; nothing runs before this passes."""
        spec = self.spec
        if not self.profile.trusted:
            raise UserError(f"device '{self.profile.name}': it runs an external command, `{spec.line}`, and its "
                            f"profile ({self.profile.path}) does not ship with hwofa. A device profile's command is "
                            f"code someone else may have written: read it, and if you trust it, run again with "
                            f"{TRUST_FLAG}.")
        return spec

    def _prepare(self, spec: CommandSpec, model: Path) -> None:
        if spec.prepare is not None:
            argv = fill(spec.prepare, placeholder_values(self.profile, str(model)))
            argv[0] = resolve(argv[0], where(self.profile), "prepare_command")
            run_argv(argv, spec.timeout_s, where(self.profile), "prepare_command")

    def _programs(self) -> list[str]:
        """Every program the profile names, resolved (the command's first)."""
        spec, values = self.spec, placeholder_values(self.profile, "model.onnx")
        named = [("command", spec.argv), ("prepare_command", spec.prepare), ("device_command", spec.device_command),
                 ("version_command", spec.version_command)]
        return [resolve(fill(argv, values)[0], where(self.profile), key) for key, argv in named if argv is not None]

    def _run(self, argv: tuple[str, ...], key: str) -> str:
        filled = fill(argv, placeholder_values(self.profile))
        filled[0] = resolve(filled[0], where(self.profile), key)
        return run_argv(filled, self._ready().timeout_s, where(self.profile), key)

    def _probe(self) -> str:
        import torch

        from profiler.onnx_io import to_onnx

        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU())
        with tempfile.TemporaryDirectory(prefix="hwofa-command-") as tmp:
            path = _write(Path(tmp), 0, "probe", to_onnx(net, (self.profile.batch_size, 8, 8, 8)))
            self._prepare(self.spec, path)
            argv = fill(self.spec.argv, placeholder_values(self.profile, str(path)))
            argv[0] = resolve(argv[0], where(self.profile))
            return run_argv(argv, self.spec.timeout_s, where(self.profile))


def _write(folder: Path, index: int, key: str, model: bytes) -> Path:
    """The model's file: a readable name from its key, restricted to characters no tool misreads."""
    path = folder / f"{index:04d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', key)[:48]}.onnx"
    path.write_bytes(model)
    return path


def summarize(runs: list[Invocation], agree: float, wanted: int) -> Timing:
    """A model's Timing from its invocations (see the module docstring); fewer than `wanted` (a
    deadline cut them short) is not converged."""
    ms = [m for m, _ in runs]
    p90s = [p for _, p in runs if p is not None]
    p50 = statistics.median(ms)
    p90 = statistics.median(p90s) if len(p90s) == len(runs) else max(ms)
    spread = max(ms) / min(ms) - 1
    cv = statistics.pstdev(ms) / statistics.fmean(ms) if len(ms) > 1 else 0.0
    return Timing(p50_ms=p50, p90_ms=max(p90, p50), n=len(ms), cv=cv, rounds_used=len(ms), rounds_replaced=0,
                  spread=spread, converged=len(ms) >= wanted and spread <= agree)
