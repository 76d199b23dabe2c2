"""TensorRT on an NVIDIA GPU (optional extra `hwofa[tensorrt]`).

Builds an engine from the ONNX bytes (fp16 when the profile asks; int8 from a QDQ model as
explicit quantization, which needs symmetric int8 activations: `int8_settings`), binds CUDA buffers
allocated through torch, and runs synchronously so the timing routine sees the whole
host-to-host latency of one inference.
"""

from __future__ import annotations

import numpy as np

from profiler.backends.base import Runner
from profiler.backends.runtime import RuntimeTarget
from profiler.precision import TENSORRT_INT8


class TensorRTTarget(RuntimeTarget):
    name = "tensorrt"
    precisions = ("fp32", "fp16", "int8")
    int8_settings = TENSORRT_INT8

    def available(self) -> tuple[bool, str]:
        try:
            import tensorrt  # noqa: F401
        except ImportError as exc:
            return False, f"TensorRT is not installed ({exc}); pip install 'hwofa[tensorrt]' on a CUDA machine"
        import torch

        if not torch.cuda.is_available():
            return False, "no CUDA GPU is visible to torch"
        return True, ""

    def version(self) -> str:
        import tensorrt

        return tensorrt.__version__

    def load(self, onnx_model: bytes) -> Runner:
        profile = self.profile
        import tensorrt as trt
        import torch

        logger = trt.Logger(trt.Logger.ERROR)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_model):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse the ONNX model: {errors}")
        config = builder.create_builder_config()
        if profile.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        elif profile.precision == "int8":  # explicit quantization: the scales are the QDQ model's, no calibrator
            if not any(network.get_layer(i).type == trt.LayerType.QUANTIZE for i in range(network.num_layers)):
                raise RuntimeError("an int8 profile needs a QDQ model (profiler.precision.to_precision), got one "
                                   "without QuantizeLinear")
            config.set_flag(trt.BuilderFlag.INT8)
        inp = network.get_input(0)
        shape = tuple(profile.batch_size if d < 0 else d for d in inp.shape)
        opt = builder.create_optimization_profile()
        opt.set_shape(inp.name, shape, shape, shape)
        config.add_optimization_profile(opt)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError("TensorRT failed to build an engine for the model")
        engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
        context = engine.create_execution_context()
        context.set_input_shape(inp.name, shape)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        device_in = torch.empty(shape, dtype=torch.float32, device="cuda")
        device_out = {n: torch.empty(tuple(context.get_tensor_shape(n)), dtype=torch.float32, device="cuda")
                      for n in outputs}
        context.set_tensor_address(inp.name, device_in.data_ptr())
        for n, t in device_out.items():
            context.set_tensor_address(n, t.data_ptr())
        stream = torch.cuda.Stream()

        def run(x: np.ndarray) -> list[np.ndarray]:
            with torch.cuda.stream(stream):
                device_in.copy_(torch.from_numpy(x))
                context.execute_async_v3(stream.cuda_stream)
                result = [device_out[n].cpu() for n in outputs]
            stream.synchronize()
            return [r.numpy() for r in result]

        return run
