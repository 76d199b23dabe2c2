"""Subnet -> verified ONNX deployment bundle: model.onnx + model.json (+ pareto.png, search.json).

Extract the subnet, recalibrate its BN, export ONNX (dynamic batch), bring it to the device
profile's precision (int8: quantized with 512 seeded training images, `profiler.precision`), then
the checklist: onnx.checker, parity of the fp32 model with PyTorch on real test images, top-1 on
the whole test set for both and for the int8 model (cached by content, export/_verify_cache.py),
the bundle's model on the device's runtime (export/device_checks.py), and its latency measured (or
modelled) by the device's target (never cached). The bundle is built in a side folder and swapped
into --out only when every fatal check passed. model.onnx is the model at the profile's precision.
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
from export.checks import Check, CheckFailed, fatal_failures, latency_check
from export.device_checks import device_checks
from export.report import bundle_report
from export.verify import Deployed, Verification, verify
from hwofa.common import UserError, atomic_write_bytes, atomic_write_json, json_type, read_json, resolve_run
from profiler import DeviceProfile, Timing, device_target, load_profile, to_onnx
from profiler.backends.base import ModelSource
from profiler.precision import settings_for, target_precision
from supernet import (
    ArchSpec,
    Dataset,
    Supernet,
    SupernetMeta,
    calibrated_subnet,
    load_dataset,
    load_supernet,
    preprocess,
    train_val_split,
)

log = logging.getLogger(__name__)
CALIBRATION_IMAGES = 512  # int8 scales: this many images of the training split (never validation or test)
CALIBRATION_SEED = 0


@dataclass
class Candidate:
    """One subnet exported to ONNX for a device; verified already when the cache held it."""

    arch: ArchSpec
    model_bytes: bytes  # the fp32 ONNX model
    deployed: Deployed  # the model at the profile's precision: what is timed and written as model.onnx
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
    """Exports subnets of one supernet for one device; the supernet, dataset and target are made once."""

    def __init__(self, device: str | DeviceProfile, supernet_run: str | os.PathLike | None = None,
                 data_dir: str | os.PathLike | None = None, loaded: tuple[Supernet, SupernetMeta] | None = None,
                 data: Dataset | None = None) -> None:
        """`loaded` (net, meta) and `data` let a run that exports for several devices load them once."""
        self.profile = device if isinstance(device, DeviceProfile) else load_profile(device)
        self.net, self.meta = loaded if loaded is not None else load_supernet(resolve_run(supernet_run))
        self.target = device_target(self.profile, self.net.space)  # UserError when it cannot honour the precision
        self.data_dir = data_dir
        self._data: Dataset | None = data

    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = load_dataset(self.meta.dataset.name, self.data_dir)
        return self._data

    def precision_key(self) -> dict[str, Any]:
        """What the bundle's model depends on beyond the fp32 one (part of the verification cache key)."""
        if self.profile.precision != "int8":
            return {"precision": self.profile.precision}
        return {"precision": "int8", "quantization": settings_for(self.target).to_dict(),
                "calibration": {"images": CALIBRATION_IMAGES, "seed": CALIBRATION_SEED, "split": "train"}}

    def candidate(self, arch: ArchSpec, calibrate: bool = True) -> Candidate:
        """The arch's ONNX models: from the verification cache, else exported now. With `calibrate=False`
        a cache miss skips BN recalibration (seconds): the graph and shapes, and so the latency, are the
        same, but such a candidate is for timing only and cannot be verified."""
        self.net.space.validate(arch)
        inputs = cache.key_inputs(self.meta, arch, self.meta.dataset.sha256 or self.data.fingerprint(),
                                  self.precision_key())
        key = cache.key_of(inputs)
        hit = cache.load(key, inputs)
        if hit is not None:
            log.info("verification of %s cached under %s", arch.key(), key[:12])
            return Candidate(arch, hit.model_bytes, hit.deployed, key, inputs, verification=hit)
        r = arch.resolution
        model = calibrated_subnet(self.net, self.meta, self.data, arch) if calibrate else self.net.extract(arch)
        model_bytes = to_onnx(model, (1, self.net.space.in_channels, r, r), dynamic_batch=True)
        return Candidate(arch, model_bytes, self.deploy(model_bytes, r), key, inputs, model=model,
                         calibrated=calibrate)

    def deploy(self, model_bytes: bytes, resolution: int) -> Deployed:
        """The fp32 model at the profile's precision (int8: calibrated on training images)."""
        calib = self.calibration_inputs(resolution) if self.profile.precision == "int8" else None
        deployed, info = target_precision(self.target, model_bytes, calib)
        if calib is not None:
            info = {**info, "calibration_split": "train", "calibration_seed": CALIBRATION_SEED}
        return Deployed(self.profile.precision, deployed, info)

    def calibration_inputs(self, resolution: int) -> np.ndarray:
        """CALIBRATION_IMAGES seeded images of the training split, preprocessed at `resolution`."""
        ds = self.meta.dataset
        train_idx, _ = train_val_split(len(self.data.train_y), ds.val_size, ds.split_seed)
        order = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(CALIBRATION_SEED))
        images = self.data.train_x[train_idx[order[:CALIBRATION_IMAGES]].sort().values]
        return preprocess(images, resolution, list(ds.mean), list(ds.std)).numpy()

    def source(self, cand: Candidate) -> ModelSource:
        """What the device times for `cand`: the deployed ONNX bytes, or for a target that times the torch
        module (torch-cuda) the same subnet as a module (random weights where the cache held the
        verification: latency does not depend on weight values). Every timing of a bundle's subnet
        (the export's figure, finalists, the cross-device table) goes through here."""
        if self.target.wants_module:
            from profiler.build import model_source, subnet_for

            r = cand.arch.resolution
            module = cand.model if cand.model is not None else subnet_for(self.net.space, cand.arch)
            return model_source(module, (1, self.net.space.in_channels, r, r), self.target)
        return lambda: cand.deployed.model_bytes

    def measure(self, cand: Candidate) -> Timing:
        """Latency of the bundle's model on the device (measured, or modelled by a cost model), every time."""
        return self.target.cost(self.source(cand))

    def verify(self, cand: Candidate) -> Verification:
        if cand.verification is None:
            ds = self.meta.dataset
            if cand.model is None or not cand.calibrated:
                raise ValueError("a timing-only candidate cannot be verified; use candidate(arch)")
            v = verify(cand.model, cand.model_bytes, cand.deployed, self.data, cand.arch.resolution, list(ds.mean),
                       list(ds.std), cand.key)
            if not fatal_failures(list(v.checks)):
                cache.store(v, cand.key_inputs)
            cand.verification = v
        return cand.verification

    def finish(self, cand: Candidate, timing: Timing, budget_ms: float | None = None,
               predicted: dict[str, Any] | None = None) -> ExportResult:
        """The full checklist and model.json content; raises CheckFailed when a fatal check fails."""
        v = self.verify(cand)
        ds = self.meta.dataset
        data = self.data if v.deployed.precision != "fp32" else None  # fp32 re-checks the stored parity images
        more, facts = device_checks(self.target, v, data, cand.arch.resolution, list(ds.mean), list(ds.std))
        checks = list(v.checks) + more
        if budget_ms is not None:
            checks.append(latency_check(self.profile.name, timing, budget_ms, self.target.source))
        failed = fatal_failures(checks)
        if failed:
            raise CheckFailed("export verification failed: " + "; ".join(ch.text for ch in failed)
                              + ". Nothing was written.")
        facts["detail"] = self.target.detail(v.deployed.model_bytes)
        report = bundle_report(self, cand.arch, v, timing, checks, budget_ms, predicted, facts)
        return ExportResult(report, checks, timing, v)

    def write(self, folder: Path, res: ExportResult, pareto: list[dict[str, Any]] | None = None) -> None:
        atomic_write_bytes(folder / "model.onnx", res.verification.deployed.model_bytes)
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
