"""model.json: what was promised (budget, predictions) and what was measured (or modelled) and checked.

A cost-model target's latency is `modelled`, never `measured_p50`; `source` names the runtime or
model and its version. `precision` is the bundle's; `quantization` holds how a reduced-precision
model was made and its test top-1 against fp32 (on onnxruntime, and under `device` on the device's
runtime where that runs models).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from export.checks import Check
from export.verify import PARITY_IMAGES, Verification
from profiler import OPSET, Target, Timing
from supernet import ArchSpec

if TYPE_CHECKING:
    from export.exporter import Exporter


def latency_section(target: Target, timing: Timing, budget_ms: float | None, predicted: dict[str, Any],
                    detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """model.json's `latency_ms`: measured p50/p90 from a runtime or command, `modelled` from a cost model."""
    out = {"budget": budget_ms, "predicted": predicted.get("latency_ms"),
           "predicted_error": predicted.get("latency_error"),
           "source": target.label()}
    if target.source == "modelled":
        out["modelled"] = timing.p50_ms
    else:
        out.update({"measured_p50": timing.p50_ms, "measured_p90": timing.p90_ms, "measured_cv": timing.cv,
                    "measured_runs": timing.n})
    if detail:
        out["detail"] = detail
    return out


def top1_interval(top1: float | None, error: dict[str, Any] | None) -> dict[str, Any] | None:
    """The predicted validation top-1's interval from its predictor's measured errors: `at_picks` (errors at
    the search's picks, measured for this predictor) where recorded, else `interval` (residuals on random
    subnets the predictor did not fit). Nominal and measured coverage and the source go with it; None where
    the predictor reports neither (an older predictor)."""
    error = error or {}
    iv = error.get("at_picks") or error.get("interval")
    if top1 is None or not isinstance(iv, dict):
        return None
    measured = iv.get("measured_coverage", iv.get("heldout_coverage"))
    return {"low": max(0.0, top1 + iv["low"]), "high": min(1.0, top1 + iv["high"]), "coverage": iv["coverage"],
            "measured_coverage": measured, "basis": "picks" if "at_picks" in error else "random subnets",
            "from": iv.get("from")}


def latency_figure(report: dict[str, Any]) -> tuple[str, float]:
    """(how it was obtained, ms) of a model.json: ("measured p50", x) or ("modelled", x)."""
    lat = report["latency_ms"]
    return ("modelled", lat["modelled"]) if "modelled" in lat else ("measured p50", lat["measured_p50"])


def bundle_report(ex: Exporter, arch: ArchSpec, v: Verification, timing: Timing, checks: list[Check],
                  budget_ms: float | None, predicted: dict[str, Any] | None,
                  facts: dict[str, Any]) -> dict[str, Any]:
    """`facts`: the device checks' figures (`device_runtime_max_abs_diff` or `device`) and the target's `detail`."""
    profile, ds, predicted = ex.profile, ex.meta.dataset, predicted or {}
    r, c = arch.resolution, ex.net.space.in_channels
    quant = quantization_section(v, facts.get("device"))
    diff = facts.get("device_runtime_max_abs_diff")
    return {
        "device": profile.name, "arch": arch.to_dict(),
        "passed": all(ch.ok for ch in checks),
        "latency_ms": latency_section(ex.target, timing, budget_ms, predicted, facts.get("detail")),
        "accuracy": {"top1_torch": v.top1_torch, "top1_onnx": v.top1_onnx,
                     "top1": v.top1_onnx if quant is None else quant["top1"],
                     "dataset": ds.name, "split": "test", "images": v.images,
                     "predicted_val_top1": predicted.get("top1"), "predicted_error": predicted.get("top1_error"),
                     "predicted_val_top1_interval": top1_interval(predicted.get("top1"), predicted.get("top1_error"))},
        "precision": v.deployed.precision, "quantization": quant,
        "parity": {"max_abs_diff": v.parity_max_abs_diff, "runtime": "onnxruntime", "images": PARITY_IMAGES,
                   **({"device_runtime_max_abs_diff": diff} if diff is not None else {})},
        "runtime": {"name": profile.backend, "version": ex.target.version(), "threads": profile.threads,
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


def quantization_section(v: Verification, device: dict[str, Any] | None) -> dict[str, Any] | None:
    """How the bundle's model was made and its test top-1 against fp32 (None for fp32). int8: on
    onnxruntime, with the device runtime's figures under `device`; fp16/bf16: on the device runtime
    (top1 None where none here computes at that precision)."""
    if v.quantization is None:
        return None
    if v.deployed.precision == "int8":
        return {**v.quantization, **({"device": device} if device else {})}
    empty = {"runtime": None, "top1": None, "top1_drop": None, "agreement": None}
    return {**v.quantization, "calibration_images": 0, **(device or empty)}
