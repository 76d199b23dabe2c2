"""A model at a profile's precision (DESIGN §5: precision is honoured or refused, never silent fp32).

- fp32: the model unchanged.
- int8: ONNX Runtime's static quantization in QDQ form (QuantizeLinear/DequantizeLinear around
  every quantizable op, int8 weights per output channel, int8 activations whose scales come from
  MinMax over the calibration images). QDQ is the portable int8 form: ONNX Runtime fuses it into
  int8 kernels, OpenVINO's CPU plugin runs the quantized ops in int8 (its low-precision
  transformations key on the QDQ pairs) and TensorRT reads it as explicit quantization (which
  needs symmetric activations, zero point 0: `QuantSettings(symmetric_activations=True)`).
- fp16 / bf16: the fp32 model; the device's runtime runs it at that precision (OpenVINO's
  INFERENCE_PRECISION_HINT, TensorRT's FP16 builder flag). Whether a target can is the target's
  `precision_problem()`; ONNX Runtime's CPU provider has no fp16 kernels for most ops, so it refuses.

The LUT build quantizes each entry with a few random-normal inputs (latency does not depend on the
scales); export calibrates on training images (`export.quantize`). The same inputs give the same bytes.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hwofa.common import UserError

log = logging.getLogger(__name__)

RUNTIME_PRECISIONS = ("fp16", "bf16")  # the model stays fp32; the runtime computes at this precision


@dataclass(frozen=True)
class QuantSettings:
    """How an int8 model is made; part of every cache key an int8 figure depends on.

    The default suits x86 CPUs (ONNX Runtime, OpenVINO): uint8 activations with a zero point and
    int8 weights (U8S8). ONNX Runtime's x86 int8 kernels are built for U8S8; S8S8 QDQ ran 5x slower
    than U8S8 on this CPU (1.49 vs 0.31 ms for a mid-size shipped subnet, batch 1, one thread).
    TensorRT's explicit quantization needs int8 activations with zero point 0."""

    activations: str = "uint8"  # "uint8" (asymmetric, U8S8) or "int8"
    symmetric_activations: bool = False  # zero point 0 for activations
    per_channel: bool = True  # one weight scale per output channel (Conv, Gemm): sound for conv nets
    calibrate_method: str = "MinMax"  # MinMax: deterministic, one pass; Entropy/Percentile need many images

    def __post_init__(self) -> None:
        if self.activations not in ("uint8", "int8") or self.calibrate_method not in ("MinMax", "Entropy",
                                                                                      "Percentile"):
            raise UserError(f"quantization: activations must be uint8 or int8 and calibrate_method MinMax, Entropy "
                            f"or Percentile; got {self.activations}, {self.calibrate_method}.")

    def to_dict(self) -> dict[str, Any]:
        return {"method": "onnxruntime.quantize_static QDQ", "weights": "int8", **asdict(self)}


DEFAULT_INT8 = QuantSettings()
TENSORRT_INT8 = QuantSettings(activations="int8", symmetric_activations=True)


def settings_for(target: Any) -> QuantSettings:
    """The int8 settings a target asks for (its `int8_settings`, else the CPU default)."""
    return getattr(target, "int8_settings", None) or DEFAULT_INT8


def target_precision(target: Any, model: bytes, calibration: np.ndarray | None) -> tuple[bytes, dict[str, Any]]:
    """`model` at `target`'s profile precision with the target's int8 settings: what a LUT entry, a
    calibration subnet and an export hand to `target.cost` / `target.runner`."""
    return to_precision(model, target.profile.precision, calibration, settings_for(target))


def to_precision(model: bytes, precision: str, calibration: np.ndarray | None,
                 settings: QuantSettings | None = None) -> tuple[bytes, dict[str, Any]]:
    """`model` (fp32 ONNX) at `precision`, and what was done to it (for model.json / a LUT header).

    `calibration`: N×C×H×W float32 inputs, already preprocessed (int8 only; ignored otherwise)."""
    if precision == "fp32":
        return model, {"method": "none (fp32)"}
    if precision in RUNTIME_PRECISIONS:
        return model, {"method": f"runtime {precision}: the fp32 model, computed at {precision} by the device runtime"}
    if precision != "int8":
        raise UserError(f"precision '{precision}' is not one of fp32, fp16, bf16, int8.")
    settings = settings or DEFAULT_INT8
    calibration = _check_calibration(model, calibration)
    return quantize_int8(model, calibration, settings), {
        **settings.to_dict(), "calibration_images": int(len(calibration))}


def _check_calibration(model: bytes, calibration: np.ndarray | None) -> np.ndarray:
    if calibration is None or len(calibration) == 0:
        raise ValueError("int8 quantization needs calibration inputs (N×C×H×W float32)")
    calibration = np.ascontiguousarray(calibration, dtype=np.float32)
    want = _input(model)[1]
    fits = calibration.ndim == len(want) and all(w <= 0 or w == g for w, g in zip(want[1:], calibration.shape[1:],
                                                                                   strict=True))
    if not fits:
        raise ValueError(f"calibration inputs of shape {calibration.shape} do not fit the model's input {want}")
    if want[0] > 0 and len(calibration) % want[0]:  # a fixed batch: whole batches, the last one filled up
        calibration = np.resize(calibration, (-(-len(calibration) // want[0]) * want[0], *calibration.shape[1:]))
    return calibration


def _input(model: bytes) -> tuple[str, list[int]]:
    """The first graph input's name and dims (0: dynamic)."""
    graph = onnx.load_from_string(model).graph
    inits = {i.name for i in graph.initializer}
    inp = next(i for i in graph.input if i.name not in inits)
    return inp.name, [d.dim_value for d in inp.type.tensor_type.shape.dim]


def quantize_int8(model: bytes, calibration: np.ndarray, settings: QuantSettings) -> bytes:
    """QDQ int8 model from ONNX Runtime's `quantize_static`, after its recommended pre-processing
    (symbolic shape inference, graph optimisation, ONNX shape inference). Files live in a temp dir."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="hwofa-int8-") as tmp:
        src, pre, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(model)
        quant_pre_process(str(src), str(pre))
        name, dims = _input(model)
        reader = _Reader(name, calibration, dims[0] if dims[0] > 0 else 64)
        activations = QuantType.QUInt8 if settings.activations == "uint8" else QuantType.QInt8
        quantize_static(str(pre), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=settings.per_channel,
                        activation_type=activations, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, settings.calibrate_method),
                        extra_options={"ActivationSymmetric": settings.symmetric_activations,
                                       "WeightSymmetric": True})
        quantized = onnx.load(str(out))
    return quantized.SerializeToString(deterministic=True)


class _Reader:
    """CalibrationDataReader over an array, `batch` images per call (the model's batch when it is fixed)."""

    def __init__(self, name: str, images: np.ndarray, batch: int) -> None:
        self.name, self.images, self.batch, self.i = name, images, batch, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.images):
            return None
        chunk = self.images[self.i:self.i + self.batch]
        self.i += self.batch
        return {self.name: chunk}

    def rewind(self) -> None:
        self.i = 0


def quantized_ops(model: bytes) -> dict[str, int]:
    """How many QuantizeLinear / DequantizeLinear nodes and int8 initializers a model holds."""
    graph = onnx.load_from_string(model).graph
    count = {"QuantizeLinear": 0, "DequantizeLinear": 0}
    for node in graph.node:
        if node.op_type in count:
            count[node.op_type] += 1
    count["int8_initializers"] = sum(1 for t in graph.initializer if t.data_type == onnx.TensorProto.INT8)
    return count
