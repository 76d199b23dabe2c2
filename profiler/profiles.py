"""Device profiles: YAML files in `device_profiles/` (or a path), validated into DeviceProfile."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from supernet import UserError

PROFILE_DIR = Path(__file__).resolve().parent.parent / "device_profiles"
KINDS = ("cpu", "gpu", "fpga")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class TimingProtocol:
    """DESIGN §5: warm-up (>= warmup_runs and >= warmup_s), then >= min_runs and >= min_s."""

    warmup_runs: int = 10
    warmup_s: float = 0.1
    min_runs: int = 50
    min_s: float = 0.25
    max_cv: float = 0.2
    remeasure: int = 2

    def __post_init__(self) -> None:
        if self.warmup_runs < 10 or self.warmup_s < 0.1 or self.min_runs < 50 or self.min_s < 0.25:
            raise UserError("timing: the protocol's floor is warm-up >= 10 runs and >= 0.1 s, then >= 50 runs "
                            f"and >= 0.25 s; got {asdict(self)}.")


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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path")
        return d

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def calibration_subnets(self) -> int:
        return int(self.calibration.get("subnets", 30))

    @property
    def calibration_seed(self) -> int:
        return int(self.calibration.get("seed", 0))


def list_profiles(directory: Path = PROFILE_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_profile(name_or_path: str | os.PathLike) -> DeviceProfile:
    """Load a profile by name (file stem in device_profiles/) or by a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILE_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            names = list_profiles()
            close = difflib.get_close_matches(str(name_or_path), names, n=3, cutoff=0.4)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"unknown device '{name_or_path}'.{hint} Known devices: {', '.join(names)} "
                            "(`hwofa devices` lists them), or pass a path to a profile YAML.")
    elif not path.is_file():
        raise UserError(f"device profile '{path}' does not exist.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"device profile '{path}' is not valid YAML: {exc}") from exc
    return profile_from_dict(data, name=path.stem, source=str(path))


def profile_from_dict(data: Any, name: str, source: str) -> DeviceProfile:
    if not isinstance(data, dict):
        raise UserError(f"device profile '{source}' must be a YAML mapping.")
    known = {f.name for f in fields(DeviceProfile)} - {"name", "path"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"device profile '{source}': unknown key(s) {unknown}; known keys: {sorted(known)}.")
    if "backend" not in data:
        raise UserError(f"device profile '{source}' needs a 'backend' (onnxruntime, openvino, tensorrt, fpga).")
    timing = data.get("timing") or {}
    try:
        prof = DeviceProfile(name=name, path=source, **{**data, "timing": TimingProtocol(**timing)})
    except TypeError as exc:
        raise UserError(f"device profile '{source}': {exc}.") from exc
    if prof.kind not in KINDS or prof.precision not in PRECISIONS:
        raise UserError(f"device profile '{source}': kind must be one of {KINDS} and precision one of "
                        f"{PRECISIONS}; got kind '{prof.kind}', precision '{prof.precision}'.")
    if prof.threads < 1 or prof.batch_size < 1 or prof.calibration_subnets < 20:
        raise UserError(f"device profile '{source}': threads and batch_size must be >= 1 and "
                        "calibration.subnets >= 20.")
    return prof
