"""Checks an exported model must pass: ONNX checker, parity with PyTorch, test top-1."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import torch

from profiler import DeviceProfile, get_backend
from supernet import preprocess

PARITY_TOL = 1e-4


class CheckFailed(Exception):
    """An exported model failed verification (internal error, exit 1)."""


@dataclass
class Check:
    ok: bool
    text: str

    def line(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.text}"


def onnx_checker(model_bytes: bytes) -> Check:
    try:
        onnx.checker.check_model(onnx.load_from_string(model_bytes), full_check=True)
    except onnx.checker.ValidationError as exc:
        return Check(False, f"onnx.checker: {exc}")
    return Check(True, "onnx.checker passed")


def batch_runner(model_bytes: bytes, profile: DeviceProfile, batch: int) -> Callable[[np.ndarray], np.ndarray]:
    """Logits for any number of inputs, run in chunks of `batch` on the profile's backend."""
    runner = get_backend(profile.backend).load(model_bytes, profile)

    def run(x: np.ndarray) -> np.ndarray:
        outs = []
        for i in range(0, len(x), batch):
            chunk = x[i:i + batch]
            n = len(chunk)
            if n < batch:  # engines built for a fixed batch get a zero-padded last chunk
                chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), chunk.dtype)])
            outs.append(runner(np.ascontiguousarray(chunk))[0][:n])
        return np.concatenate(outs)

    return run


def reference_profile() -> DeviceProfile:
    """ONNX Runtime on this CPU, all cores: the runtime every export is checked on."""
    return DeviceProfile(name="onnxruntime-check", backend="onnxruntime", threads=os.cpu_count() or 1)


def parity(model: torch.nn.Module, model_bytes: bytes, profile: DeviceProfile, batch: int,
           x: torch.Tensor) -> tuple[float, Check]:
    """Max abs difference of logits between PyTorch and `profile`'s runtime on inputs `x`."""
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    got = batch_runner(model_bytes, profile, batch)(x.numpy())
    diff = float(np.abs(ref - got).max())
    ok = diff <= PARITY_TOL
    return diff, Check(ok, f"parity on {profile.backend}: max abs diff {diff:.1e} {'<=' if ok else '>'} "
                           f"{PARITY_TOL:.0e} ({len(x)} test images)")


def test_top1(model: torch.nn.Module, model_bytes: bytes, images: torch.Tensor, labels: torch.Tensor,
              resolution: int, mean: list[float], std: list[float]) -> tuple[float, float]:
    """Top-1 of the PyTorch model and of the ONNX model on ONNX Runtime, on the same images."""
    run = batch_runner(model_bytes, reference_profile(), 500)
    torch_correct = onnx_correct = 0
    for i in range(0, len(images), 1000):
        x = preprocess(images[i:i + 1000], resolution, mean, std)
        y = labels[i:i + 1000].numpy()
        with torch.no_grad():
            torch_correct += int((model(x.contiguous(memory_format=torch.channels_last)).argmax(1).numpy() == y).sum())
        onnx_correct += int((run(x.numpy()).argmax(1) == y).sum())
    return torch_correct / len(images), onnx_correct / len(images)
