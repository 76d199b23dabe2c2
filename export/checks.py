"""Checks an exported model must pass: ONNX checker, parity with PyTorch, test top-1, precision, latency.

Each check says whether it is fatal: a failed fatal check means the bundle is not written; a
failed non-fatal one (the latency budget) is recorded in model.json as `passed: false`; an
informational one says what could not be checked and why (it never fails).

Checks are precision-aware. The fp32 model is held to max-abs parity with PyTorch (1e-4). A model
at a reduced precision cannot be: its logits move by design. It is held instead to its test top-1
drop against the fp32 ONNX model and to the share of test images whose predicted class it keeps
(`BOUNDS`), on the reference runtime and on the device's runtime where it runs models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx
import torch

from profiler import Timing
from profiler.precision import quantized_ops
from profiler.reference import Logits

PARITY_TOL = 1e-4
TOP1_TOL = 1e-3


@dataclass(frozen=True)
class PrecisionBounds:
    """How far a reduced-precision model may move from its fp32 ONNX model on the whole test set."""

    max_top1_drop: float  # top-1 (fraction) of fp32 minus that of the model; a gain always passes
    min_agreement: float  # share of test images predicted the same class as the fp32 model


# int8 (per-channel weights, MinMax post-training quantization): a sound int8 conv net loses a few
# tenths of a point (0.09 points, 99.0 % agreement for a mid-size shipped subnet); 1.5 points is the
# usual upper end for post-training int8 of MobileNet-class nets, and broken scales cost tens of points.
# The agreement bound catches errors that cancel in top-1. fp16 keeps 10 mantissa bits, bf16 7: both
# agree on >= 99.8 % of the test set here, so their bounds are much tighter.
BOUNDS = {"int8": PrecisionBounds(0.015, 0.95), "fp16": PrecisionBounds(0.002, 0.995),
          "bf16": PrecisionBounds(0.005, 0.99)}


class CheckFailed(Exception):
    """An exported model failed a fatal check (exit 1); nothing was written."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    text: str
    fatal: bool = True
    informational: bool = False  # says what was not checked and why; never fails

    def line(self) -> str:
        if self.informational:
            return f"· {self.text} (informational)"
        note = "" if self.ok or self.fatal else " (not fatal)"
        return f"{'✓' if self.ok else '✗'} {self.text}{note}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        return cls(str(data["name"]), bool(data["ok"]), str(data["text"]), bool(data["fatal"]),
                   bool(data.get("informational", False)))


def not_checked(name: str, why: str) -> Check:
    """An informational entry: a check that could not run here, and why."""
    return Check(name, True, why, fatal=False, informational=True)


def fatal_failures(checks: list[Check]) -> list[Check]:
    return [ch for ch in checks if ch.fatal and not ch.ok]


def onnx_checker(model_bytes: bytes, what: str = "") -> Check:
    name = f"onnx_checker{'_' + what if what else ''}"
    label = f"onnx.checker{' (' + what + ' model)' if what else ''}"
    try:
        onnx.checker.check_model(onnx.load_from_string(model_bytes), full_check=True)
    except onnx.checker.ValidationError as exc:
        return Check(name, False, f"{label}: {exc}")
    return Check(name, True, f"{label} passed")


def int8_check(model_bytes: bytes) -> Check:
    """The int8 model really is int8: quantize/dequantize pairs and int8 weights."""
    ops = quantized_ops(model_bytes)
    ok = ops["QuantizeLinear"] > 0 and ops["int8_initializers"] > 0
    return Check("int8_model", ok, f"int8 model: {ops['QuantizeLinear']} QuantizeLinear, {ops['DequantizeLinear']} "
                 f"DequantizeLinear, {ops['int8_initializers']} int8 tensors" + ("" if ok else "; it is not quantized"))


def torch_logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        t = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
        return model.eval()(t).numpy()


def parity(ref: np.ndarray, logits: Logits, where: str, x: np.ndarray) -> tuple[float, Check]:
    """Max abs difference between PyTorch's logits `ref` and a runtime's (`where` names it) on inputs `x`."""
    diff = float(np.abs(ref[:len(x)] - logits(x)).max())
    ok = diff <= PARITY_TOL
    return diff, Check(f"parity_{where}", ok,
                       f"parity on {where}: max abs diff {diff:.1e} {'<=' if ok else '>'} "
                       f"{PARITY_TOL:.0e} ({len(x)} test images)")


def top1_check(top1_torch: float, top1_onnx: float, images: int) -> Check:
    ok = abs(top1_torch - top1_onnx) <= TOP1_TOL
    return Check("top1_agreement", ok, f"test top-1: torch {top1_torch:.4f}, onnx {top1_onnx:.4f} ({images} images)"
                 + ("" if ok else f"; differ by more than {TOP1_TOL}"))


def precision_checks(precision: str, where: str, top1_fp32: float, top1: float, agreement: float,
                     images: int) -> list[Check]:
    """Top-1 drop and prediction agreement of a `precision` model against the fp32 ONNX model."""
    bounds, drop = BOUNDS[precision], top1_fp32 - top1
    drop_ok, agree_ok = drop <= bounds.max_top1_drop, agreement >= bounds.min_agreement
    return [Check(f"top1_drop_{precision}_{where}", drop_ok,
                  f"{precision} on {where}: test top-1 {top1:.4f} vs fp32 {top1_fp32:.4f}, drop "
                  f"{100 * drop:.2f} points {'<=' if drop_ok else '>'} {100 * bounds.max_top1_drop:.2f} "
                  f"({images} images)"),
            Check(f"agreement_{precision}_{where}", agree_ok,
                  f"{precision} on {where}: same class as fp32 on {100 * agreement:.2f} % of test images "
                  f"{'>=' if agree_ok else '<'} {100 * bounds.min_agreement:.1f} %")]


def latency_check(device: str, timing: Timing, budget_ms: float, source: str = "measured") -> Check:
    """Not fatal: a bundle over budget is still the closest found; model.json says passed: false."""
    ok = timing.p50_ms <= budget_ms
    figure = f"{timing.p50_ms:.3f} ms" if source == "modelled" else f"p50 {timing.p50_ms:.3f} ms"
    spread = "" if source == "modelled" else f" (p90 {timing.p90_ms:.3f} ms)"
    return Check("latency_budget", ok, f"latency on {device} ({source}): {figure} "
                 f"{'<=' if ok else '>'} budget {budget_ms:.3f} ms{spread}", fatal=False)
