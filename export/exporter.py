"""Subnet -> verified ONNX deployment bundle: model.onnx + model.json (+ pareto.png).

Extract the subnet, recalibrate its BN, export ONNX (dynamic batch), then the checklist:
onnx.checker, parity with PyTorch on real test images, top-1 on the whole test set for
both, and latency re-measured on the device's runtime with the profiler's timing routine.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from export.checks import Check, CheckFailed, onnx_checker, parity, reference_profile, test_top1
from profiler import OPSET, DeviceProfile, get_backend, load_profile, measure_stable, to_onnx
from supernet import (
    ArchSpec,
    UserError,
    atomic_write_bytes,
    atomic_write_json,
    calibrated_subnet,
    load_dataset,
    load_supernet,
    preprocess,
)

log = logging.getLogger(__name__)
PARITY_IMAGES = 256


def export_subnet(arch: ArchSpec, device: str | DeviceProfile, out: str | os.PathLike,
                  supernet_run: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
                  budget_ms: float | None = None, predicted: dict[str, Any] | None = None,
                  pareto: list[dict[str, Any]] | None = None) -> tuple[dict[str, Any], list[Check]]:
    """Write the bundle for `arch` into `out`; returns (model.json content, checklist)."""
    profile = device if isinstance(device, DeviceProfile) else load_profile(device)
    backend = get_backend(profile.backend)
    net, meta = load_supernet(supernet_run)
    net.space.validate(arch)
    ds = meta["dataset"]
    data = load_dataset(ds["name"], data_dir)
    model = calibrated_subnet(net, meta, data, arch)
    r, c = arch.resolution, net.space.in_channels
    model_bytes = to_onnx(model, (1, c, r, r), dynamic_batch=True)
    checks = [onnx_checker(model_bytes)]
    x = preprocess(data.test_x[:PARITY_IMAGES], r, ds["mean"], ds["std"])
    diff, check = parity(model, model_bytes, reference_profile(), 64, x)
    checks.append(check)
    device_parity = None
    if profile.backend != "onnxruntime":
        device_parity, check = parity(model, model_bytes, profile, profile.batch_size, x[:64])
        checks.append(check)
    top1_torch, top1_onnx = test_top1(model, model_bytes, data.test_x, data.test_y, r, ds["mean"], ds["std"])
    checks.append(Check(abs(top1_torch - top1_onnx) <= 1e-3,
                        f"test top-1: torch {top1_torch:.4f}, onnx {top1_onnx:.4f} ({len(data.test_y)} images)"))
    runner = backend.load(model_bytes, profile)
    sample = np.ascontiguousarray(x[:1].repeat(profile.batch_size, 1, 1, 1).numpy())
    timing = measure_stable(lambda: runner(sample), profile.timing)
    if budget_ms is not None:
        checks.append(Check(timing.p50_ms <= budget_ms, f"latency on {profile.name}: p50 {timing.p50_ms:.3f} ms "
                                                        f"{'<=' if timing.p50_ms <= budget_ms else '>'} budget "
                                                        f"{budget_ms:.3f} ms (p90 {timing.p90_ms:.3f} ms)"))
    report = {
        "device": profile.name, "arch": arch.to_dict(),
        "latency_ms": {"budget": budget_ms, "predicted": (predicted or {}).get("latency_ms"),
                       "predicted_error": (predicted or {}).get("latency_error"),
                       "measured_p50": timing.p50_ms, "measured_p90": timing.p90_ms, "measured_cv": timing.cv,
                       "measured_runs": timing.n},
        "accuracy": {"top1_torch": top1_torch, "top1_onnx": top1_onnx, "dataset": ds["name"], "split": "test",
                     "images": len(data.test_y), "predicted_val_top1": (predicted or {}).get("top1"),
                     "predicted_error": (predicted or {}).get("top1_error")},
        "parity": {"max_abs_diff": diff, "runtime": "onnxruntime", "images": PARITY_IMAGES,
                   **({"device_runtime_max_abs_diff": device_parity} if device_parity is not None else {})},
        "runtime": {"name": profile.backend, "version": backend.version(), "threads": profile.threads,
                    "batch_size": profile.batch_size, "precision": profile.precision},
        "preprocess": {"resolution": r, "resize": "bilinear", "antialias": True, "align_corners": False,
                       "scale": 1 / 255, "mean": ds["mean"], "std": ds["std"],
                       "order": ["scale", "resize", "subtract mean", "divide by std"]},
        "onnx": {"opset": OPSET, "path": "model.onnx", "input_shape": [profile.batch_size, c, r, r],
                 "input_name": "input", "output_name": "logits", "dynamic_batch": True},
        "classes": ds.get("classes"),
        "supernet": {"weights_sha256": meta["weights_sha256"], "space_hash": net.space.space_hash()},
        "checks": [ch.line() for ch in checks],
    }
    failed = [ch for ch in checks if not ch.ok and not ch.text.startswith("latency")]
    if failed:
        raise CheckFailed("export verification failed: " + "; ".join(ch.text for ch in failed))
    out = Path(out)
    atomic_write_bytes(out / "model.onnx", model_bytes)
    atomic_write_json(out / "model.json", report)
    if pareto:
        from export.plot import pareto_png

        pareto_png(out / "pareto.png", pareto, arch, timing.p50_ms, top1_torch, budget_ms, profile.name)
    else:  # no search behind this export: an earlier bundle's plot would describe another model
        (out / "pareto.png").unlink(missing_ok=True)
    return report, checks


def load_arch(path: str | os.PathLike) -> ArchSpec:
    from supernet import read_json

    data = read_json(path, "arch")
    if isinstance(data, dict) and "arch" in data and "stages" not in data:
        data = data["arch"]
    if not isinstance(data, dict):
        raise UserError(f"arch: '{path}' must hold an ArchSpec JSON object.")
    return ArchSpec.from_dict(data)
