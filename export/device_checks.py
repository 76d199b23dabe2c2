"""The bundle's model on the device's own runtime, checked every export (never cached).

fp32: max-abs parity with PyTorch on the stored parity images. int8/fp16/bf16: the whole test set's
top-1 on the device runtime, its drop against the fp32 ONNX model and the share of predictions it
keeps. A target that runs no models in-process (a cost model, an external command) gets an
informational entry saying so: nothing is silently skipped.
"""

from __future__ import annotations

from typing import Any

from export.checks import Check, not_checked, parity
from export.verify import REFERENCE, Verification, precision_accuracy
from profiler import Target
from profiler.reference import batched, predictions
from supernet import Dataset

PARITY_DEVICE_IMAGES = 64


def device_checks(target: Target, v: Verification, data: Dataset | None, resolution: int, mean: list[float],
                  std: list[float]) -> tuple[list[Check], dict[str, Any]]:
    """Checks on `target`'s runtime and model.json facts: `device_runtime_max_abs_diff` (fp32) or
    `device` (the precision figures on the device). `data` is needed for a reduced precision only."""
    precision = v.deployed.precision
    if target.name == REFERENCE:  # the reference runtime ran the bundle's model already (verify.py)
        return [], {}
    run = target.runner(v.deployed.model_bytes)
    if run is None:
        checked = "its fp32 parity and top-1 were checked on onnxruntime" if precision != "int8" else \
            "the int8 model's top-1 and agreement were checked on onnxruntime"
        if precision in ("fp16", "bf16"):
            checked = f"the {precision} model's accuracy could not be measured (onnxruntime has no {precision} kernels)"
        return [not_checked(f"device_{target.name}", f"not checked on the device: the {target.name} target "
                            f"({target.kind}) runs no models here; {checked}")], {}
    logits = batched(run, target.profile.batch_size)
    if precision == "fp32":
        diff, check = parity(v.parity_ref[:PARITY_DEVICE_IMAGES], logits, target.name,
                             v.parity_x[:PARITY_DEVICE_IMAGES])
        return [check], {"device_runtime_max_abs_diff": diff}
    if data is None:
        raise ValueError("a reduced-precision device check needs the test images")
    preds = predictions(logits, data.test_x, resolution, mean, std, desc=f"test set on {target.name}")
    record, checks = precision_accuracy(v.deployed, v.top1_onnx, v.preds_fp32, preds, data.test_y,
                                        f"{target.name} {target.version()}")
    return checks, {"device": record}
