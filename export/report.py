"""model.json: what was promised (budget, predictions) and what was measured and checked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from export.checks import Check
from export.verify import PARITY_IMAGES, Verification
from profiler import OPSET, Timing
from supernet import ArchSpec

if TYPE_CHECKING:
    from export.exporter import Exporter


def bundle_report(ex: Exporter, arch: ArchSpec, v: Verification, timing: Timing, checks: list[Check],
                  budget_ms: float | None, predicted: dict[str, Any] | None,
                  device_diff: float | None) -> dict[str, Any]:
    profile, ds, predicted = ex.profile, ex.meta.dataset, predicted or {}
    r, c = arch.resolution, ex.net.space.in_channels
    return {
        "device": profile.name, "arch": arch.to_dict(),
        "passed": all(ch.ok for ch in checks),
        "latency_ms": {"budget": budget_ms, "predicted": predicted.get("latency_ms"),
                       "predicted_error": predicted.get("latency_error"),
                       "measured_p50": timing.p50_ms, "measured_p90": timing.p90_ms, "measured_cv": timing.cv,
                       "measured_runs": timing.n},
        "accuracy": {"top1_torch": v.top1_torch, "top1_onnx": v.top1_onnx, "dataset": ds.name, "split": "test",
                     "images": v.images, "predicted_val_top1": predicted.get("top1"),
                     "predicted_error": predicted.get("top1_error")},
        "parity": {"max_abs_diff": v.parity_max_abs_diff, "runtime": "onnxruntime", "images": PARITY_IMAGES,
                   **({"device_runtime_max_abs_diff": device_diff} if device_diff is not None else {})},
        "runtime": {"name": profile.backend, "version": ex.backend.version(), "threads": profile.threads,
                    "batch_size": profile.batch_size, "precision": profile.precision},
        "preprocess": {"resolution": r, "resize": "bilinear", "antialias": True, "align_corners": False,
                       "scale": 1 / 255, "mean": list(ds.mean), "std": list(ds.std),
                       "order": ["scale", "resize", "subtract mean", "divide by std"]},
        "onnx": {"opset": OPSET, "path": "model.onnx", "input_shape": [profile.batch_size, c, r, r],
                 "input_name": "input", "output_name": "logits", "dynamic_batch": True},
        "classes": list(ds.classes) if ds.classes is not None else None,
        "supernet": {"weights_sha256": ex.meta.weights_sha256, "space_hash": ex.net.space.space_hash()},
        "checks": [ch.to_dict() for ch in checks],
        "verification": {"cached": v.cached, "key": v.key},
    }
