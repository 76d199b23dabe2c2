"""Build a LUT on a device: every entry as its own small ONNX model, then calibration.

Entries are measured in a random order (machine drift spreads evenly over the table),
each through the single timing routine, and the partial table is flushed atomically
after every entry and every calibration subnet: a killed build resumes where it was.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from profiler.backends import get_backend
from profiler.calibration import calibrate
from profiler.lut import LatencyTable, all_entries
from profiler.onnx_io import to_onnx
from profiler.profiles import DeviceProfile
from profiler.timing import Timing, measure_stable
from supernet import ArchSpec, Head, SearchSpace, Stem, SubNet, UserError, block_for

log = logging.getLogger(__name__)


def host_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"hostname": socket.gethostname(), "cpu": cpu, "cores": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__}


def make_header(profile: DeviceProfile, space: SearchSpace, runtime_version: str) -> dict[str, Any]:
    return {"device": profile.name, "profile": profile.to_dict(), "profile_digest": profile.digest(),
            "runtime": {"name": profile.backend, "version": runtime_version}, "host": host_info(),
            "protocol": profile.timing.__dict__, "space_hash": space.space_hash(), "space": space.to_dict(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "build_seconds": 0.0}


def stale_reason(table: LatencyTable, profile: DeviceProfile, runtime_version: str) -> str | None:
    """Why a stored table may not be reused for `profile` on this machine (None: reusable)."""
    h = table.header
    if h.get("profile_digest") != profile.digest():
        return "the device profile changed"
    if h.get("runtime", {}).get("version") != runtime_version:
        return f"the runtime changed ({h.get('runtime', {}).get('version')} -> {runtime_version})"
    if h.get("host", {}).get("cpu") != host_info()["cpu"]:
        return "it was measured on another CPU"
    return None


def module_for(space: SearchSpace, spec: dict[str, Any]) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """The module an entry measures and its input shape (batch 1 is replaced by the profile's)."""
    r = spec["resolution"]
    if spec["kind"] == "overhead":
        return torch.nn.ReLU(), (1, space.in_channels, r, r)
    if spec["kind"] == "stem":
        return Stem(space), (1, space.in_channels, r, r)
    if spec["kind"] == "head":
        hw = space.feature_size(r, space.num_stages)
        return Head(space), (1, space.stage_channels[-1], hw, hw)
    s, first = spec["stage"], spec["first"]
    block = block_for(space, s, first, spec["kernel_size"], spec["expand_ratio"])
    in_ch = space.stage_in_channels(s) if first else space.stage_channels[s]
    hw = space.feature_size(r, s) if first else space.feature_size(r, s + 1)
    return block, (1, in_ch, hw, hw)


def subnet_for(space: SearchSpace, arch: ArchSpec) -> SubNet:
    """A randomly initialised plain subnet: latency does not depend on weight values."""
    blocks = [block_for(space, s, b == 0, spec.kernel_size, spec.expand_ratio)
              for s, stage in enumerate(arch.stages) for b, spec in enumerate(stage)]
    return SubNet(Stem(space), blocks, Head(space))


def time_module(module: torch.nn.Module, shape: tuple[int, ...], profile: DeviceProfile, backend: Any) -> Timing:
    shape = (profile.batch_size, *shape[1:])
    runner = backend.load(to_onnx(module, shape), profile)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return measure_stable(lambda: runner(x), profile.timing)


def calibration_archs(space: SearchSpace, n: int, seed: int) -> list[ArchSpec]:
    rng = random.Random(seed)
    archs, seen = [space.smallest(), space.largest()], set()
    seen.update(a.key() for a in archs)
    for _ in range(100 * n):
        if len(archs) >= n:
            break
        a = space.sample(rng)
        if a.key() not in seen:
            seen.add(a.key())
            archs.append(a)
    return archs


def build_lut(profile: DeviceProfile, space: SearchSpace, path: str | os.PathLike, rebuild: bool = False,
              progress: bool = True) -> LatencyTable:
    """Measure (or finish measuring) the LUT of `space` on `profile`'s device into `path`."""
    path = Path(path)
    backend = get_backend(profile.backend)
    version = backend.version()
    table = _resume_or_new(path, profile, space, version, rebuild)
    t0 = time.time() - table.header.get("build_seconds", 0.0)
    specs = all_entries(space)
    todo = table.missing()
    random.Random(profile.calibration_seed).shuffle(todo)
    for key in tqdm(todo, desc=f"profile {profile.name}", disable=not progress, unit="entry"):
        module, shape = module_for(space, specs[key])
        table.entries[key] = time_module(module, shape, profile, backend).to_dict()
        table.header["build_seconds"] = round(time.time() - t0, 1)
        table.save(path)
    if not table.calibration:
        _calibrate(table, profile, backend, path, progress, t0)
    return table


def _resume_or_new(path: Path, profile: DeviceProfile, space: SearchSpace, version: str,
                   rebuild: bool) -> LatencyTable:
    if path.is_file() and not rebuild:
        table = LatencyTable.load(path, space=space, device=profile.name, require_complete=False)
        why = stale_reason(table, profile, version)
        if why is None:
            return table
        log.warning("LUT %s is stale (%s); measuring it again", path, why)
    return LatencyTable(space, make_header(profile, space, version))


def _calibrate(table: LatencyTable, profile: DeviceProfile, backend: Any, path: Path, progress: bool,
               t0: float) -> None:
    archs = calibration_archs(table.space, profile.calibration_subnets, profile.calibration_seed)
    done = {p["arch_key"]: p for p in table.header.get("calibration_partial", [])}
    order = [a for a in archs if a.key() not in done]
    random.Random(profile.calibration_seed + 1).shuffle(order)
    shape = (1, table.space.in_channels)
    for arch in tqdm(order, desc="calibrate", disable=not progress, unit="subnet"):
        t = time_module(subnet_for(table.space, arch), (*shape, arch.resolution, arch.resolution), profile, backend)
        done[arch.key()] = {"arch_key": arch.key(), "arch": arch.to_dict(), "raw_ms": table.raw_ms(arch),
                            "measured_p50_ms": t.p50_ms, "measured_p90_ms": t.p90_ms, "cv": t.cv}
        table.header["calibration_partial"] = list(done.values())
        table.header["build_seconds"] = round(time.time() - t0, 1)
        table.save(path)
    points = [done[a.key()] for a in archs]
    if len(points) < 3:
        raise UserError("calibration needs at least 3 distinct subnets; the space is too small.")
    table.calibration = calibrate(points)
    table.header.pop("calibration_partial", None)
    table.header["build_seconds"] = round(time.time() - t0, 1)
    table.save(path)
