"""Subnet -> verified ONNX deployment bundle: model.onnx + model.json (+ pareto.png, search.json).

Extract the subnet, recalibrate its BN, export ONNX (dynamic batch), then the checklist:
onnx.checker, parity with PyTorch on real test images, top-1 on the whole test set for both
(cached by content, export/_verify_cache.py), parity on the device's runtime, and latency
re-measured on the device with the profiler's timing routine (never cached). The bundle is
built in a side folder and swapped into --out only when every fatal check passed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export import _verify_cache as cache
from export.bundle import StagedBundle, check_out_folder
from export.checks import Check, CheckFailed, fatal_failures, latency_check, parity
from export.report import bundle_report
from export.verify import Verification, verify
from hwofa.common import UserError, atomic_write_bytes, atomic_write_json, json_type, read_json, resolve_run
from profiler import DeviceProfile, Timing, get_backend, load_profile, measure_stable, to_onnx
from profiler.build import canary_for
from profiler.interleave import Canary
from supernet import ArchSpec, Dataset, calibrated_subnet, load_dataset, load_supernet, preprocess

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    """One subnet exported to ONNX for a device; verified already when the cache held it."""

    arch: ArchSpec
    model_bytes: bytes
    sample: np.ndarray  # one preprocessed test image: the latency input
    key: str
    key_inputs: dict[str, Any]
    verification: Verification | None = None
    model: torch.nn.Module | None = None  # None on a cache hit: nothing needs PyTorch then
    calibrated: bool = True  # False: BN not recalibrated, good for timing only (see Exporter.candidate)


@dataclass
class ExportResult:
    report: dict[str, Any]
    checks: list[Check]
    timing: Timing
    verification: Verification
    written: bool = False
    out: Path | None = None

    @property
    def passed(self) -> bool:
        return bool(self.report["passed"])


class Exporter:
    """Exports subnets of one supernet for one device; the supernet and dataset are loaded once."""

    def __init__(self, device: str | DeviceProfile, supernet_run: str | os.PathLike | None = None,
                 data_dir: str | os.PathLike | None = None) -> None:
        self.profile = device if isinstance(device, DeviceProfile) else load_profile(device)
        self.backend = get_backend(self.profile.backend)
        self.net, self.meta = load_supernet(resolve_run(supernet_run))
        self.data_dir = data_dir
        self._data: Dataset | None = None
        self._canary: Canary | None = None

    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = load_dataset(self.meta.dataset.name, self.data_dir)
        return self._data

    def candidate(self, arch: ArchSpec, calibrate: bool = True) -> Candidate:
        """The arch's ONNX model: from the verification cache, else exported now. With `calibrate=False`
        a cache miss skips BN recalibration (seconds): the graph and shapes, and so the latency, are the
        same, but such a candidate is for timing only and cannot be verified."""
        self.net.space.validate(arch)
        inputs = cache.key_inputs(self.meta, arch, self.meta.dataset.sha256 or self.data.fingerprint())
        key = cache.key_of(inputs)
        hit = cache.load(key, inputs)
        if hit is not None:
            log.info("verification of %s cached under %s", arch.key(), key[:12])
            return Candidate(arch, hit.model_bytes, hit.sample, key, inputs, verification=hit)
        ds, r = self.meta.dataset, arch.resolution
        model = calibrated_subnet(self.net, self.meta, self.data, arch) if calibrate else self.net.extract(arch)
        model_bytes = to_onnx(model, (1, self.net.space.in_channels, r, r), dynamic_batch=True)
        sample = preprocess(self.data.test_x[:1], r, list(ds.mean), list(ds.std)).numpy()
        return Candidate(arch, model_bytes, sample, key, inputs, model=model, calibrated=calibrate)

    def measure(self, cand: Candidate) -> Timing:
        """Latency on the device's runtime, measured every time (never cached)."""
        runner = self.backend.load(cand.model_bytes, self.profile)
        x = np.ascontiguousarray(np.repeat(cand.sample, self.profile.batch_size, axis=0))
        if self._canary is None:
            self._canary = canary_for(self.profile, self.backend, self.net.space)
        return measure_stable(lambda: runner(x), self.profile.timing, canary=self._canary)

    def verify(self, cand: Candidate) -> Verification:
        if cand.verification is None:
            ds = self.meta.dataset
            if cand.model is None or not cand.calibrated:
                raise ValueError("a timing-only candidate cannot be verified; use candidate(arch)")
            v = verify(cand.model, cand.model_bytes, self.data, cand.arch.resolution, list(ds.mean), list(ds.std),
                       cand.key)
            if not fatal_failures(list(v.checks)):
                cache.store(v, cand.key_inputs)
            cand.verification = v
        return cand.verification

    def finish(self, cand: Candidate, timing: Timing, budget_ms: float | None = None,
               predicted: dict[str, Any] | None = None) -> ExportResult:
        """The full checklist and model.json content; raises CheckFailed when a fatal check fails."""
        v = self.verify(cand)
        checks = list(v.checks)
        device_diff = None
        if self.profile.backend != "onnxruntime":  # the device's own runtime, on the stored parity inputs
            device_diff, check = parity(v.parity_ref[:64], v.model_bytes, self.profile, self.profile.batch_size,
                                        v.parity_x[:64])
            checks.append(check)
        if budget_ms is not None:
            checks.append(latency_check(self.profile.name, timing, budget_ms))
        failed = fatal_failures(checks)
        if failed:
            raise CheckFailed("export verification failed: " + "; ".join(ch.text for ch in failed)
                              + ". Nothing was written.")
        report = bundle_report(self, cand.arch, v, timing, checks, budget_ms, predicted, device_diff)
        return ExportResult(report, checks, timing, v)

    def write(self, folder: Path, res: ExportResult, pareto: list[dict[str, Any]] | None = None) -> None:
        atomic_write_bytes(folder / "model.onnx", res.verification.model_bytes)
        atomic_write_json(folder / "model.json", res.report)
        if pareto:
            from export.plot import pareto_png

            acc = res.report["accuracy"]
            pareto_png(folder / "pareto.png", pareto, ArchSpec.from_dict(res.report["arch"]), res.timing.p50_ms,
                       acc["top1_torch"], res.report["latency_ms"]["budget"], self.profile.name)


def export_subnet(arch: ArchSpec, device: str | DeviceProfile, out: str | os.PathLike,
                  supernet_run: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
                  budget_ms: float | None = None, predicted: dict[str, Any] | None = None,
                  pareto: list[dict[str, Any]] | None = None) -> ExportResult:
    """Export `arch` for `device` and swap the verified bundle into `out` (see export/bundle.py)."""
    out_path = check_out_folder(out)
    ex = Exporter(device, supernet_run, data_dir)
    cand = ex.candidate(arch)
    res = ex.finish(cand, ex.measure(cand), budget_ms, predicted)
    return commit_bundle(ex, res, out_path, pareto)


def commit_bundle(ex: Exporter, res: ExportResult, out: Path, pareto: list[dict[str, Any]] | None = None,
                  extra_files: dict[str, Any] | None = None) -> ExportResult:
    """Write the bundle (plus `extra_files`: name -> JSON) on the side and swap it into `out`."""
    with StagedBundle(out) as staged:
        ex.write(staged.dir, res, pareto)
        for name, obj in (extra_files or {}).items():
            atomic_write_json(staged.dir / name, obj)
        res.written, res.out = staged.commit(res.passed), out
    return res


def load_arch(path: str | os.PathLike) -> ArchSpec:
    data = read_json(path, "arch")
    if isinstance(data, dict) and "arch" in data and "stages" not in data:
        data = data["arch"]  # a model.json or a search entry: its "arch" field
    if not isinstance(data, dict):
        raise UserError(f"arch: '{path}' holds {json_type(data)}, not an ArchSpec JSON object such as "
                        '{"resolution": 28, "stages": [[{"kernel_size": 3, "expand_ratio": 4}, ...], ...]}.')
    return ArchSpec.from_dict(data, source=f"arch '{path}'")
