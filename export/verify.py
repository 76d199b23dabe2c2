"""What export verifies about one subnet's ONNX model, independent of the device it will run on.

onnx.checker, parity with PyTorch on ONNX Runtime, and top-1 of both on the whole test set: these
depend only on the supernet, the arch, the dataset and the code, so their results are cached by
content (export/_verify_cache.py). Latency and the device runtime's parity are never cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from export.checks import Check, onnx_checker, parity, reference_profile, test_top1, top1_check, torch_logits
from supernet import Dataset, preprocess

PARITY_IMAGES = 256


@dataclass(frozen=True)
class Verification:
    """The device-independent checklist of one ONNX model, with the inputs needed to re-check a device."""

    model_bytes: bytes
    top1_torch: float
    top1_onnx: float
    images: int
    parity_max_abs_diff: float
    checks: tuple[Check, ...]
    parity_x: np.ndarray  # preprocessed test images the parity ran on (float32, NCHW)
    parity_ref: np.ndarray  # PyTorch's logits on them
    cached: bool = False
    key: str = ""

    @property
    def sample(self) -> np.ndarray:
        """One preprocessed test image, the input latency is measured on."""
        return self.parity_x[:1]


def parity_inputs(data: Dataset, resolution: int, mean: list[float], std: list[float]) -> np.ndarray:
    return np.ascontiguousarray(preprocess(data.test_x[:PARITY_IMAGES], resolution, mean, std).numpy())


def verify(model: torch.nn.Module, model_bytes: bytes, data: Dataset, resolution: int, mean: list[float],
           std: list[float], key: str = "") -> Verification:
    """Run the device-independent checks (the slow part of an export: top-1 on the whole test set)."""
    x = parity_inputs(data, resolution, mean, std)
    ref = torch_logits(model, x)
    diff, parity_check = parity(ref, model_bytes, reference_profile(), 64, x)
    top1_torch, top1_onnx = test_top1(model, model_bytes, data.test_x, data.test_y, resolution, mean, std)
    checks = (onnx_checker(model_bytes), parity_check, top1_check(top1_torch, top1_onnx, len(data.test_y)))
    return Verification(model_bytes, top1_torch, top1_onnx, len(data.test_y), diff, checks, x, ref, key=key)
