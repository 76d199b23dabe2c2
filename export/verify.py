"""What export verifies about one subnet's ONNX models, independent of the device they will run on.

onnx.checker, parity of the fp32 model with PyTorch on ONNX Runtime, top-1 of both on the whole test
set, and for an int8 bundle the int8 model's test top-1 and its agreement with fp32 on ONNX Runtime:
these depend only on the supernet, the arch, the dataset, the precision settings and the code, so
their results are cached by content (export/_verify_cache.py). Latency and the device runtime's
checks are never cached (export/device_checks.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from export.checks import (
    Check,
    int8_check,
    onnx_checker,
    parity,
    precision_checks,
    top1_check,
    torch_logits,
)
from profiler.reference import batched, predictions, reference_runner, top1
from supernet import Dataset, preprocess

PARITY_IMAGES = 256
REFERENCE = "onnxruntime"


@dataclass(frozen=True)
class Deployed:
    """The bundle's model: the fp32 ONNX model at the device profile's precision."""

    precision: str
    model_bytes: bytes  # int8: the QDQ model; fp32/fp16/bf16: the fp32 model (the runtime sets fp16/bf16)
    info: dict[str, Any] = field(default_factory=dict)  # how it was made (method, calibration images, ...)


@dataclass(frozen=True)
class Verification:
    """The device-independent checklist of one subnet, with the inputs needed to re-check a device."""

    model_bytes: bytes  # the fp32 ONNX model
    top1_torch: float
    top1_onnx: float
    images: int
    parity_max_abs_diff: float
    checks: tuple[Check, ...]
    parity_x: np.ndarray  # preprocessed test images the parity ran on (float32, NCHW)
    parity_ref: np.ndarray  # PyTorch's logits on them
    deployed: Deployed
    preds_fp32: np.ndarray  # the fp32 ONNX model's class for every test image (agreement on a device)
    quantization: dict[str, Any] | None = None  # precision figures on the reference runtime (int8)
    cached: bool = False
    key: str = ""

    @property
    def sample(self) -> np.ndarray:
        """One preprocessed test image."""
        return self.parity_x[:1]


def parity_inputs(data: Dataset, resolution: int, mean: list[float], std: list[float]) -> np.ndarray:
    return np.ascontiguousarray(preprocess(data.test_x[:PARITY_IMAGES], resolution, mean, std).numpy())


def precision_accuracy(deployed: Deployed, top1_fp32: float, preds_fp32: np.ndarray, preds: np.ndarray,
                       labels: torch.Tensor, runtime: str) -> tuple[dict[str, Any], list[Check]]:
    """model.json's figures for a reduced-precision model on `runtime`, and its checks."""
    acc, agreement = top1(preds, labels), float((preds == preds_fp32).mean())
    record = {"runtime": runtime, "top1_fp32": top1_fp32, "top1": acc, "top1_drop": top1_fp32 - acc,
              "agreement": agreement}
    return record, precision_checks(deployed.precision, runtime.split()[0], top1_fp32, acc, agreement, len(preds))


def verify(model: torch.nn.Module, model_bytes: bytes, deployed: Deployed, data: Dataset, resolution: int,
           mean: list[float], std: list[float], key: str = "") -> Verification:
    """Run the device-independent checks (the slow part of an export: top-1 on the whole test set)."""
    x = parity_inputs(data, resolution, mean, std)
    ref = torch_logits(model, x)
    run = reference_runner(model_bytes)
    diff, parity_check = parity(ref, batched(run, 64), REFERENCE, x)
    preds_torch = predictions(lambda a: torch_logits(model, a), data.test_x, resolution, mean, std)
    preds_fp32 = predictions(batched(run, 500), data.test_x, resolution, mean, std)
    top1_torch, top1_onnx = top1(preds_torch, data.test_y), top1(preds_fp32, data.test_y)
    checks = [onnx_checker(model_bytes), parity_check, top1_check(top1_torch, top1_onnx, len(data.test_y))]
    quantization = None
    if deployed.precision == "int8":  # the int8 model runs on the reference runtime too
        preds = predictions(batched(reference_runner(deployed.model_bytes), 500), data.test_x, resolution, mean, std)
        record, more = precision_accuracy(deployed, top1_onnx, preds_fp32, preds, data.test_y, REFERENCE)
        quantization = {**deployed.info, **record}
        checks += [onnx_checker(deployed.model_bytes, "int8"), int8_check(deployed.model_bytes), *more]
    elif deployed.precision != "fp32":  # fp16/bf16: the fp32 model; only the device computes at that precision
        quantization = {**deployed.info, "top1_fp32": top1_onnx}
    return Verification(model_bytes, top1_torch, top1_onnx, len(data.test_y), diff, tuple(checks), x, ref,
                        deployed, preds_fp32, quantization, key=key)
