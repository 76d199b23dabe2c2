"""Build a LUT on a device: every entry as its own small ONNX model, then calibration.

Every figure comes from the device's target (profiler/backends): a runtime times entries with
the one timing routine (interleaved short rounds with a canary, disturbed rounds replaced), a
cost model computes them (modelled), an external command reports them. Entries are built at
the profile's precision (int8 entries are quantized, see profiler/precision.py). The table is built in a
side file (`<name>.partial.json`) flushed atomically after every finished entry and every
calibration subnet, so a killed build resumes where it stopped and never measures a
finished item twice; the finished table replaces the cached one only when it is complete.
A stale cached table (another CPU, runtime or profile) is kept beside the new one.

After calibration the build checks the profile's fidelity goal (default ±10 % on >= 90 % of
the calibration subnets, leave-one-out). Short of it, it re-measures the worst subnets and
their entries for up to `calibration.retry_s`; still short, the table is written marked
`degraded`, and every command that uses it says so.
"""

from __future__ import annotations

import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwofa.common import UserError
from profiler.backends import Target, get_target
from profiler.backends.base import ModuleSource
from profiler.calibration import calibrate, outliers, worst_points
from profiler.lut import LatencyTable, all_entries, arch_keys, overhead_key
from profiler.onnx_io import to_onnx
from profiler.precision import target_precision
from profiler.profiles import DeviceProfile
from profiler.provenance import host_info, make_header, stale_reason
from profiler.timing import Round, Timing
from supernet import ArchSpec, Head, SearchSpace, Stem, SubNet, block_for

log = logging.getLogger(__name__)

__all__ = ["build_lut", "calibration_archs", "host_info", "make_header", "model_source", "module_for", "partial_path",
           "stale_reason", "subnet_for", "subnet_source"]


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
    g = space.block_geometry(s, first, r)
    return block_for(space, s, first, spec["kernel_size"], spec["expand_ratio"]), (1, g.in_ch, g.in_hw, g.in_hw)


def subnet_for(space: SearchSpace, arch: ArchSpec) -> SubNet:
    """A randomly initialised plain subnet: latency does not depend on weight values."""
    blocks = [block_for(space, s, b == 0, spec.kernel_size, spec.expand_ratio)
              for s, stage in enumerate(arch.stages) for b, spec in enumerate(stage)]
    return SubNet(Stem(space), blocks, Head(space))


CALIBRATION_INPUTS = 8  # random inputs that set an entry's int8 scales: latency does not depend on them


def model_source(module: torch.nn.Module, shape: tuple[int, ...], target: Target) -> ModuleSource:
    """A function that exports `module` at the profile's batch size and precision (int8 entries are
    quantized with the target's settings and scales from a few random inputs) and returns the ONNX bytes;
    it carries the module and its input shape for a target that times the module itself (`wants_module`)."""
    full = (target.profile.batch_size, *shape[1:])

    def make() -> bytes:
        calib = np.random.default_rng(0).standard_normal((CALIBRATION_INPUTS, *shape[1:])).astype(np.float32)
        return target_precision(target, to_onnx(module, full), calib)[0]
    return ModuleSource(module, full, make)


def subnet_source(space: SearchSpace, arch: ArchSpec, target: Target) -> ModuleSource:
    """`model_source` of a whole (randomly initialised) subnet at its input resolution."""
    shape = (1, space.in_channels, arch.resolution, arch.resolution)
    return model_source(subnet_for(space, arch), shape, target)


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


def partial_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


class _Build:
    """One build's state: the table in its side file, the target, the clock."""

    def __init__(self, table: LatencyTable, profile: DeviceProfile, target: Target, work: Path, progress: bool):
        self.table, self.profile, self.target, self.work, self.progress = table, profile, target, work, progress
        self.t0 = time.time() - table.header.get("build_seconds", 0.0)
        target.restore(table.header.get("target_state") or {})
        self.rng = random.Random(profile.calibration_seed)
        self.specs = all_entries(table.space)

    @property
    def repeatable(self) -> bool:
        """False for a cost model: it gives the same figure every time, re-measuring changes nothing."""
        return self.target.kind != "cost-model"

    def save(self) -> None:
        self.table.header["build_seconds"] = round(time.time() - self.t0, 1)
        self.table.header["target_state"] = self.target.state()
        self.table.save(self.work)

    def measure_entries(self, keys: list[str], desc: str, deadline: float | None = None) -> None:
        modules = {k: module_for(self.table.space, self.specs[k]) for k in keys}

        def done(key: str, t: Timing, rounds: list[Round]) -> None:
            self.table.entries[key] = {**t.to_dict(), "weight_mb": _weight_mb(modules[key][0], self.profile),
                                       "rounds": [r.to_list() for r in rounds]}
            self.save()

        sources = {k: model_source(*modules[k], self.target) for k in keys}
        self.target.cost_many(sources, self.rng, on_done=done, progress=self.progress, desc=desc, deadline=deadline)

    def measure_subnets(self, archs: list[ArchSpec], desc: str, deadline: float | None = None) -> None:
        points = {p["arch_key"]: p for p in self.table.header.get("calibration_partial", [])}
        by_key = {a.key(): a for a in archs}

        def done(key: str, t: Timing, rounds: list[Round]) -> None:
            arch = by_key[key]
            points[key] = {"arch_key": key, "arch": arch.to_dict(), "raw_ms": self.table.raw_ms(arch),
                           "weight_mb": self.table.weight_mb(arch),
                           **_point_fields(t), "rounds": [r.to_list() for r in rounds]}
            self.table.header["calibration_partial"] = list(points.values())
            self.save()

        sources = {a.key(): subnet_source(self.table.space, a, self.target) for a in archs}
        self.target.cost_many(sources, self.rng, on_done=done, progress=self.progress, desc=desc, deadline=deadline)

    def points(self, archs: list[ArchSpec]) -> list[dict[str, Any]]:
        """Calibration points, every figure re-estimated from its rounds on the target's current
        scale (a runtime's canary reference), so that entries and subnets measured at different
        times share one scale."""
        self.refresh()
        done = {p["arch_key"]: p for p in self.table.header.get("calibration_partial", [])}
        pts = [done[a.key()] for a in archs]
        for p, a in zip(pts, archs, strict=True):
            t = self.target.reestimate([Round.from_list(r) for r in p.get("rounds", [])])
            if t is not None:
                p.update(_point_fields(t))
            p["raw_ms"], p["weight_mb"] = self.table.raw_ms(a), self.table.weight_mb(a)
        return pts

    def refresh(self) -> None:
        for key, e in self.table.entries.items():
            t = self.target.reestimate([Round.from_list(r) for r in e.get("rounds", [])])
            if t is not None:
                self.table.entries[key] = {**e, **t.to_dict()}

    def remeasure(self, archs: list[ArchSpec], why: str, deadline: float | None) -> None:
        """Measure these subnets and every entry they sum, afresh, in a later time window."""
        keys = sorted({k for a in archs for k in arch_keys(self.table.space, a)}
                      | {overhead_key(a.resolution) for a in archs})
        log.info("re-measuring %d subnet(s) and %d entries (%s)", len(archs), len(keys), why)
        for k in keys:
            self.table.entries.pop(k, None)
        partial = [p for p in self.table.header.get("calibration_partial", [])
                   if p["arch_key"] not in {a.key() for a in archs}]
        self.table.header["calibration_partial"] = partial
        self.table.header.setdefault("remeasured", []).append({"why": why, "subnets": [a.key() for a in archs],
                                                               "entries": keys})
        self.measure_entries(keys, "re-measure entries", deadline)
        self.measure_subnets(archs, "re-measure subnets", deadline)


BYTES_PER_WEIGHT = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}


def _weight_mb(module: torch.nn.Module, profile: DeviceProfile) -> float:
    """Megabytes of parameters at the profile's precision (BN folds into the convs, so it is counted like them)."""
    n = sum(p.numel() for p in module.parameters())
    return round(n * BYTES_PER_WEIGHT[profile.precision] / 1e6, 6)


def _point_fields(t: Timing) -> dict[str, Any]:
    return {"measured_p50_ms": t.p50_ms, "measured_p90_ms": t.p90_ms, "cv": t.cv, "spread": t.spread,
            "rounds_replaced": t.rounds_replaced, "converged": t.converged}


def build_lut(profile: DeviceProfile, space: SearchSpace, path: str | os.PathLike, rebuild: bool = False,
              progress: bool = True) -> LatencyTable:
    """Measure (or finish measuring) the LUT of `space` on `profile`'s device; swap it into
    `path` only when complete. `rebuild` ignores a complete table at `path` (a partial
    rebuild in the side file is still resumed)."""
    path = Path(path)
    target = get_target(profile)
    work = partial_path(path)
    table = _resume(work, profile, space, target) or LatencyTable(space, make_header(profile, space, target))
    b = _Build(table, profile, target, work, progress)
    if table.missing():
        b.measure_entries(table.missing(), f"profile {profile.name}")
    archs = calibration_archs(space, profile.calibration_subnets, profile.calibration_seed)
    if table.calibration is None:
        done = {p["arch_key"] for p in table.header.get("calibration_partial", [])}
        todo = [a for a in archs if a.key() not in done]
        if todo:
            b.measure_subnets(todo, "calibrate")
        _fit_and_check(b, archs)
    _swap_in(work, path, table, profile, target)
    return table


def _fit_and_check(b: _Build, archs: list[ArchSpec]) -> None:
    tol, share = b.profile.fidelity_goal
    if len(archs) < 3:
        raise UserError("calibration needs at least 3 distinct subnets; the space is too small.")
    out = outliers(b.points(archs), tol) if b.repeatable else []
    if out:
        b.remeasure([archs[i] for i in out], f"{len(out)} calibration outlier(s)", None)
    deadline = time.monotonic() + b.profile.retry_s
    cal = calibrate(b.points(archs), tol)
    tries = 0
    while b.repeatable and cal["fidelity"]["within_tolerance"] < share and time.monotonic() < deadline:
        worst = worst_points(cal, tol) or []
        keys = {p["arch_key"] for p in worst[:max(3, len(worst))]}
        tries += 1
        b.remeasure([a for a in archs if a.key() in keys], f"fidelity below the goal, try {tries}", deadline)
        cal = calibrate(b.points(archs), tol)
    b.table.calibration = cal
    repeat = _repeatability(b, archs, tol)
    b.table.header.pop("calibration_partial", None)
    b.table.header["quality"] = _quality(b, cal, tol, share, tries, repeat)
    b.save()


REPEAT_SUBNETS = 8
REPEAT_SHARE = 0.75  # of them within half the tolerance, or the table is degraded


def _repeatability(b: _Build, archs: list[ArchSpec], tol: float) -> dict[str, Any] | None:
    """Measure a few calibration subnets again, later, with fresh sessions: how well does this
    machine reproduce its own figures? A table can be no surer than that. (None for a cost
    model: it computes the same figure every time.)"""
    if not b.repeatable:
        return None
    pick = archs[:: max(1, len(archs) // REPEAT_SUBNETS)][:REPEAT_SUBNETS]
    sources = {a.key(): subnet_source(b.table.space, a, b.target) for a in pick}
    again = b.target.cost_many(sources, b.rng, progress=False)
    before = {p["arch_key"]: p["measured_p50_ms"] for p in b.points(pick)}
    rel = [abs(again[k].p50_ms / before[k] - 1) for k in before]
    return {"n": len(rel), "within_half_tolerance": float(np.mean([r <= tol / 2 for r in rel])),
            "median_abs_pct": float(100 * np.median(rel)), "max_abs_pct": float(100 * max(rel))}


def _quality(b: _Build, cal: dict[str, Any], tol: float, share: float, tries: int,
             repeat: dict[str, Any] | None) -> dict[str, Any]:
    entries = b.table.entries.values()
    rounds = sum(len(e.get("rounds", [])) for e in entries)
    replaced = sum(e.get("rounds_replaced", 0) for e in entries)
    got = cal["fidelity"]["within_tolerance"]
    repeats = repeat is None or repeat["within_half_tolerance"] >= REPEAT_SHARE
    q = {"status": "ok" if got >= share and repeats else "degraded",
         "goal": {"tolerance_pct": 100 * tol, "min_share": share}, "within_tolerance": got, "fidelity_retries": tries,
         "repeatability": repeat,
         "entry_rounds": rounds, "entry_rounds_replaced": replaced,
         "entries_not_converged": sum(1 for e in entries if not e.get("converged", True))}
    if got < share:
        q["reason"] = (f"only {100 * got:.0f} % of {cal['fidelity']['n']} calibration subnets are predicted within "
                       f"±{100 * tol:.0f} % (goal {100 * share:.0f} %) after {tries} re-measurement(s) over "
                       f"{b.profile.retry_s:.0f} s"
                       + (f"; {replaced} of {rounds} entry rounds were set aside as disturbed by outside load or out "
                          "of agreement" if rounds else ""))
    elif repeat is not None and not repeats:
        q["reason"] = (f"the machine does not reproduce its own measurements: {repeat['n']} calibration subnets "
                       f"measured again a little later moved by {repeat['median_abs_pct']:.1f} % (median; max "
                       f"{repeat['max_abs_pct']:.1f} %), only {100 * repeat['within_half_tolerance']:.0f} % within "
                       f"±{50 * tol:.0f} %")
    return q


def _resume(work: Path, profile: DeviceProfile, space: SearchSpace, target: Target) -> LatencyTable | None:
    if not work.is_file():
        return None
    try:
        table = LatencyTable.load(work, space=space, device=profile.name, require_complete=False)
    except UserError as exc:
        log.warning("ignoring the unusable partial build %s (%s)", work, exc)
        return None
    why = stale_reason(table, profile, target)
    if why is not None:
        log.warning("the partial build %s cannot be resumed (%s); starting afresh", work, why)
        return None
    log.info("resuming the partial build %s (%d entries measured)", work, len(table.entries))
    return table


def _swap_in(work: Path, path: Path, table: LatencyTable, profile: DeviceProfile, target: Target) -> None:
    """Replace `path` with the finished side file; a stale table there is kept beside it."""
    if path.is_file():
        try:
            old = LatencyTable.load(path, require_complete=False)
            why = stale_reason(old, profile, target) if old.device == profile.name else "another device"
        except UserError:
            why = None  # unreadable: nothing good to keep
        if why is not None:
            kept = _kept_path(path, old.header)
            os.replace(path, kept)
            log.warning("kept the previous table (%s) as %s", why, kept)
    table.save(work)
    os.replace(work, path)


def _kept_path(path: Path, header: dict[str, Any]) -> Path:
    host = header.get("host", {})
    tag = "".join(ch if ch.isalnum() else "-" for ch in f"{host.get('hostname', 'unknown')}-"
                  f"{header.get('created', '')}")[:60].strip("-")
    return path.with_name(f"{path.stem}.{tag}{path.suffix}")
