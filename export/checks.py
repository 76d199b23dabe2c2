"""Checks an exported model must pass: ONNX checker, parity with PyTorch, test top-1, latency.

Each check says whether it is fatal: a failed fatal check means the bundle is not written; a
failed non-fatal one (the latency budget) is recorded in model.json as `passed: false`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx
import torch

from profiler import DeviceProfile, Timing, get_backend
from supernet import preprocess

PARITY_TOL = 1e-4
TOP1_TOL = 1e-3


class CheckFailed(Exception):
    """An exported model failed a fatal check (exit 1); nothing was written."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    text: str
    fatal: bool = True

    def line(self) -> str:
        note = "" if self.ok or self.fatal else " (not fatal)"
        return f"{'✓' if self.ok else '✗'} {self.text}{note}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        return cls(str(data["name"]), bool(data["ok"]), str(data["text"]), bool(data["fatal"]))


def fatal_failures(checks: list[Check]) -> list[Check]:
    return [ch for ch in checks if ch.fatal and not ch.ok]


def onnx_checker(model_bytes: bytes) -> Check:
    try:
        onnx.checker.check_model(onnx.load_from_string(model_bytes), full_check=True)
    except onnx.checker.ValidationError as exc:
        return Check("onnx_checker", False, f"onnx.checker: {exc}")
    return Check("onnx_checker", True, "onnx.checker passed")


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


def torch_logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).numpy()


def parity(ref: np.ndarray, model_bytes: bytes, profile: DeviceProfile, batch: int,
           x: np.ndarray) -> tuple[float, Check]:
    """Max abs difference between PyTorch's logits `ref` and `profile`'s runtime on inputs `x`."""
    got = batch_runner(model_bytes, profile, batch)(x)
    diff = float(np.abs(ref[:len(x)] - got).max())
    ok = diff <= PARITY_TOL
    return diff, Check(f"parity_{profile.backend}", ok,
                       f"parity on {profile.backend}: max abs diff {diff:.1e} {'<=' if ok else '>'} "
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


def top1_check(top1_torch: float, top1_onnx: float, images: int) -> Check:
    ok = abs(top1_torch - top1_onnx) <= TOP1_TOL
    return Check("top1_agreement", ok, f"test top-1: torch {top1_torch:.4f}, onnx {top1_onnx:.4f} ({images} images)"
                 + ("" if ok else f"; differ by more than {TOP1_TOL}"))


def latency_check(device: str, timing: Timing, budget_ms: float) -> Check:
    """Not fatal: a bundle over budget is still the closest found; model.json says passed: false."""
    ok = timing.p50_ms <= budget_ms
    return Check("latency_budget", ok, f"latency on {device}: p50 {timing.p50_ms:.3f} ms {'<=' if ok else '>'} "
                 f"budget {budget_ms:.3f} ms (p90 {timing.p90_ms:.3f} ms)", fatal=False)
