"""Device profiles: YAML files in `device_profiles/` (or a path), validated into DeviceProfile."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from hwofa.common import UserError

PROFILE_DIR = Path(__file__).resolve().parent.parent / "device_profiles"
KINDS = ("cpu", "gpu", "fpga")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
CALIBRATION_KEYS = {"subnets", "seed", "tolerance_pct", "min_share", "retry_s"}


@dataclass(frozen=True)
class TimingProtocol:
    """DESIGN §5, one timing routine for every runtime target.

    Each item (a LUT entry, a calibration subnet, an exported model) is warmed up, then timed
    in short rounds (>= `round_runs` calls and >= `round_s` seconds each) interleaved in a
    random order with the other items, a fixed canary model timed just before every round.
    A round is quiet when its canary ran within `canary_tol` of the canary's undisturbed
    reference; other rounds are replaced. An item is done when `rounds` quiet rounds agree
    within `agree` (relative), at most `max_rounds` rounds in all (then the best estimate
    there is, marked not converged).
    """

    warmup_runs: int = 10
    warmup_s: float = 0.03
    round_runs: int = 10
    round_s: float = 0.02
    rounds: int = 3
    max_rounds: int = 20
    agree: float = 0.03
    canary_tol: float = 0.1

    def __post_init__(self) -> None:
        floor_ok = (self.warmup_runs >= 10 and self.warmup_s >= 0.01 and self.round_runs >= 5
                    and self.round_s >= 0.005 and self.rounds >= 3 and self.max_rounds >= self.rounds)
        if not floor_ok or not (0 < self.agree <= 0.2) or not (0 < self.canary_tol <= 0.5):
            raise UserError("timing: the protocol's floor is warm-up >= 10 runs and >= 0.01 s, rounds of >= 5 runs "
                            "and >= 0.005 s, >= 3 agreeing rounds, max_rounds >= rounds, 0 < agree <= 0.2 and "
                            f"0 < canary_tol <= 0.5; got {asdict(self)}.")


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    backend: str
    kind: str = "cpu"
    description: str = ""
    precision: str = "fp32"
    threads: int = 1
    batch_size: int = 1
    timing: TimingProtocol = field(default_factory=TimingProtocol)
    calibration: dict[str, Any] = field(default_factory=lambda: {"subnets": 30, "seed": 0})
    options: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    # may its external command run (profiler/backends/command.py)? Set by load_profile, never read from YAML
    trusted: bool = field(default=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path")
        d.pop("trusted")
        return d

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def calibration_subnets(self) -> int:
        return int(self.calibration.get("subnets", 30))

    @property
    def calibration_seed(self) -> int:
        return int(self.calibration.get("seed", 0))

    @property
    def fidelity_goal(self) -> tuple[float, float]:
        """(tolerance, share): the table is healthy when >= share of out-of-sample whole subnets
        are predicted within ±tolerance (relative); default ±10 % on >= 90 %."""
        return float(self.calibration.get("tolerance_pct", 10)) / 100, float(self.calibration.get("min_share", 0.9))

    @property
    def retry_s(self) -> float:
        """Seconds a build may spend re-measuring to reach the fidelity goal before it gives up."""
        return float(self.calibration.get("retry_s", 60))


def list_profiles(directory: Path = PROFILE_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_profile(name_or_path: str | os.PathLike, trust_command: bool = False) -> DeviceProfile:
    """Load a profile by name (file stem in device_profiles/) or by a path to a YAML file.

    It is `trusted` (its external command, if any, may run) when it ships with hwofa (its file lies
    in PROFILE_DIR) or the user confirmed it (`trust_command`, the CLI's --trust-device-command)."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILE_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            names = list_profiles()
            close = difflib.get_close_matches(str(name_or_path), names, n=3, cutoff=0.4)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"unknown device '{name_or_path}'.{hint} Known devices: {', '.join(names)} "
                            "(`hwofa devices` lists them), or pass a path to a profile YAML.")
    elif path.is_dir():
        raise UserError(f"device profile '{path}' is a folder; give the path of a profile YAML file.")
    elif not path.is_file():
        raise UserError(f"device profile '{path}' does not exist.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"device profile '{path}' is not valid YAML: {exc}") from exc
    prof = profile_from_dict(data, name=path.stem, source=str(path))
    return replace(prof, trusted=trust_command or path.resolve().parent == PROFILE_DIR.resolve())


def profile_from_dict(data: Any, name: str, source: str) -> DeviceProfile:
    if not isinstance(data, dict):
        raise UserError(f"device profile '{source}' must be a YAML mapping.")
    known = {f.name for f in fields(DeviceProfile)} - {"name", "path", "trusted"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"device profile '{source}': unknown key(s) {unknown}; known keys: {sorted(known)}.")
    if "backend" not in data:
        raise UserError(f"device profile '{source}' needs a 'backend' (onnxruntime, openvino, tensorrt, fpga).")
    timing = data.get("timing") or {}
    for key in ("timing", "calibration", "options"):
        if not isinstance(data.get(key, {}), dict):
            raise UserError(f"device profile '{source}': '{key}' must be a mapping, got {type(data[key]).__name__}.")
    try:
        prof = DeviceProfile(name=name, path=source, **{**data, "timing": TimingProtocol(**timing)})
    except TypeError as exc:
        raise UserError(f"device profile '{source}': {exc}.") from exc
    if prof.kind not in KINDS or prof.precision not in PRECISIONS:
        raise UserError(f"device profile '{source}': kind must be one of {KINDS} and precision one of "
                        f"{PRECISIONS}; got kind '{prof.kind}', precision '{prof.precision}'.")
    unknown = sorted(set(prof.calibration) - CALIBRATION_KEYS)
    if unknown:
        raise UserError(f"device profile '{source}': unknown calibration key(s) {unknown}; known keys: "
                        f"{sorted(CALIBRATION_KEYS)}.")
    tol, share = prof.fidelity_goal
    if not (0 < tol < 1 and 0 < share <= 1 and prof.retry_s >= 0):
        raise UserError(f"device profile '{source}': calibration.tolerance_pct must be in (0, 100), min_share in "
                        "(0, 1] and retry_s >= 0.")
    if prof.threads < 1 or prof.batch_size < 1 or prof.calibration_subnets < 20:
        raise UserError(f"device profile '{source}': threads and batch_size must be >= 1 and "
                        "calibration.subnets >= 20.")
    return prof
