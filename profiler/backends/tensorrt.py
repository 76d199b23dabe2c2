"""TensorRT on an NVIDIA GPU (optional extra `hwofa[tensorrt]`, TensorRT 10.x and 11.x).

Written against TensorRT's Python API documentation; TensorRT could not be installed where it was
written, so it has not run (the torch-cuda target is the GPU path that has). Choices:

- Precision is the model's, in a *strongly typed* network (the NetworkDefinitionCreationFlag
  STRONGLY_TYPED: opt-in on 10.x, always on and the flag ignored on 11.x). fp32: the fp32 model;
  fp16: the model converted to fp16 (`_onnx_fp16.to_fp16`), since BuilderFlag.FP16 was deprecated
  in 10.12 and removed in 11.0; int8: explicit quantization from a QDQ model with symmetric int8
  activations (`int8_settings`, made by profiler/precision.py) — any other int8 model is refused
  with a UserError (exit 2); TensorRT's implicit int8 calibration is gone in 11.
- I/O buffers take their dtypes from `engine.get_tensor_dtype` and their shapes from the context.
- The booleans of `set_input_shape`, `set_tensor_address` and `execute_async_v3` are checked: a
  failure raises instead of being timed as a fast no-op.
- Timing: buffers stay on the device, a random input is written once; rounds are CUDA events around
  several `execute_async_v3` enqueues (profiler/backends/_cuda.py), no host copy inside. The `runner`
  for parity copies in and out, outside any timing.
- One timing cache per target instance (one LUT build), shared by every engine it builds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hwofa.common import UserError
from profiler.backends._cuda import DeviceRunner, OnGpu
from profiler.backends._onnx_fp16 import to_fp16
from profiler.backends.base import Runner
from profiler.backends.runtime import RuntimeTarget
from profiler.precision import TENSORRT_INT8, quantized_ops

log = logging.getLogger(__name__)

TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT8": torch.int8,
                "UINT8": torch.uint8, "INT32": torch.int32, "INT64": torch.int64, "BOOL": torch.bool}


def engine_model(model: bytes, precision: str) -> bytes:
    """The ONNX model whose types carry `precision` into a strongly typed network."""
    if precision == "fp32":
        return model
    if precision == "fp16":
        return to_fp16(model)
    if precision == "int8":
        q = quantized_ops(model)
        if not (q["QuantizeLinear"] and q["DequantizeLinear"]):
            raise UserError("TensorRT runs int8 only as explicit quantization: the model must be a QDQ model "
                            "(profiler.precision.to_precision with the target's int8 settings); this one has no "
                            "QuantizeLinear/DequantizeLinear nodes.")
        return model
    raise UserError(f"TensorRT runs fp32, fp16 or int8 (QDQ), not {precision}.")


def torch_dtype(trt_dtype: Any) -> torch.dtype:
    """The torch dtype of a TensorRT DataType (`trt.DataType.HALF` -> torch.float16)."""
    name = getattr(trt_dtype, "name", str(trt_dtype)).rsplit(".", 1)[-1]
    if name not in TORCH_DTYPES:
        raise RuntimeError(f"TensorRT I/O tensor of type {name}: no buffer type for it")
    return TORCH_DTYPES[name]


def check(ok: Any, what: str) -> None:
    """TensorRT calls that report failure by returning False (or None) raise instead."""
    if ok is None or ok is False:
        raise RuntimeError(f"TensorRT: {what} failed")


def network_flags(trt: Any) -> int:
    """Strongly typed: opt in on 10.x; on 11.x the flag is ignored (or absent) and the mode always on."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


@dataclass(frozen=True)
class TensorIO:
    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: torch.dtype


def io_tensors(engine: Any, context: Any, trt: Any) -> list[TensorIO]:
    """Every I/O tensor of an engine: name, direction, shape (as the context resolves it), dtype."""
    out = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        shape = tuple(int(d) for d in context.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise RuntimeError(f"TensorRT: tensor '{name}' still has an unresolved shape {shape}")
        out.append(TensorIO(name, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT, shape,
                            torch_dtype(engine.get_tensor_dtype(name))))
    return out


class _Bound:
    """An engine's execution context with device buffers bound to every I/O tensor, on its own stream."""

    def __init__(self, engine: Any, trt: Any, batch: int) -> None:
        self.engine, self.context = engine, engine.create_execution_context()
        check(self.context, "create_execution_context")
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                shape = tuple(batch if d < 0 else int(d) for d in engine.get_tensor_shape(name))
                check(self.context.set_input_shape(name, shape), f"set_input_shape({name}, {shape})")
        self.io = io_tensors(engine, self.context, trt)
        g = torch.Generator(device="cuda").manual_seed(0)
        self.buffers = {t.name: (torch.randn(t.shape, generator=g, device="cuda").to(t.dtype) if t.is_input
                                 else torch.empty(t.shape, dtype=t.dtype, device="cuda")) for t in self.io}
        for name, buf in self.buffers.items():
            check(self.context.set_tensor_address(name, buf.data_ptr()), f"set_tensor_address({name})")
        self.stream = torch.cuda.Stream()

    def enqueue(self) -> None:
        check(self.context.execute_async_v3(self.stream.cuda_stream), "execute_async_v3")

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Parity: copy `x` in, run, copy the outputs out as float32 (copies; never timed)."""
        first = next(t for t in self.io if t.is_input)
        with torch.cuda.stream(self.stream):
            self.buffers[first.name].copy_(torch.from_numpy(np.ascontiguousarray(x)).to(first.dtype))
            self.enqueue()
            outs = [self.buffers[t.name].float().cpu() for t in self.io if not t.is_input]
        self.stream.synchronize()
        return [o.numpy() for o in outs]


class TensorRTTarget(OnGpu, RuntimeTarget):
    name = "tensorrt"
    precisions = ("fp32", "fp16", "int8")
    int8_settings = TENSORRT_INT8

    def __init__(self, profile) -> None:
        super().__init__(profile)
        self._timing_cache: Any = None  # one per target instance: one LUT build shares it across its engines

    def available(self) -> tuple[bool, str]:
        try:
            import tensorrt  # noqa: F401
        except ImportError as exc:
            return False, f"TensorRT is not installed ({exc}); pip install 'hwofa[tensorrt]' on a CUDA machine"
        if not torch.cuda.is_available():
            return False, "no CUDA GPU is visible to torch"
        return True, ""

    def version(self) -> str:
        import tensorrt

        return tensorrt.__version__

    def build(self, onnx_model: bytes) -> Any:
        """A deserialized engine for the model at the profile's precision (strongly typed network)."""
        import tensorrt as trt

        model = engine_model(onnx_model, self.profile.precision)
        logger = trt.Logger(trt.Logger.ERROR)
        builder = trt.Builder(logger)
        network = builder.create_network(network_flags(trt))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(model):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse the ONNX model: {errors}")
        config = builder.create_builder_config()
        if self._timing_cache is None:
            self._timing_cache = config.create_timing_cache(b"")
        check(config.set_timing_cache(self._timing_cache, False), "set_timing_cache")
        inp = network.get_input(0)
        if any(d < 0 for d in inp.shape):
            shape = tuple(self.profile.batch_size if d < 0 else d for d in inp.shape)
            opt = builder.create_optimization_profile()
            opt.set_shape(inp.name, shape, shape, shape)
            config.add_optimization_profile(opt)
        serialized = builder.build_serialized_network(network, config)
        check(serialized, "build_serialized_network")
        engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
        check(engine, "deserialize_cuda_engine")
        return engine

    def _bind(self, model: bytes) -> _Bound:
        import tensorrt as trt

        self.note_gpu_state()
        return _Bound(self.build(model), trt, self.profile.batch_size)

    def load(self, onnx_model: bytes) -> Runner:
        return self._bind(onnx_model).run

    def _no_arg(self, model: bytes) -> DeviceRunner:
        """What the timing routine times: enqueues on device-resident buffers, timed by CUDA events."""
        bound = self._bind(model)
        return DeviceRunner(bound.enqueue, bound.stream, keep=bound)
