"""ONNX Runtime, CPU execution provider: fp32, and int8 as QDQ models (fused into its int8 kernels).

fp16 and bf16 are refused: the CPU provider has no fp16 kernels for most operators (Conv,
depthwise Conv and Gemm among them), so an fp16 model would be cast back to fp32 or not load.
"""

from __future__ import annotations

import numpy as np

from profiler.backends.base import Runner
from profiler.backends.runtime import RuntimeTarget

_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}


class OnnxRuntimeTarget(RuntimeTarget):
    name = "onnxruntime"
    precisions = ("fp32", "int8")

    def precision_problem(self) -> str | None:
        if self.profile.precision in ("fp16", "bf16"):
            return (f"ONNX Runtime's CPU execution provider has no {self.profile.precision} kernels for most "
                    "operators (Conv and Gemm among them), so the model would run in fp32, not the precision asked; "
                    "use fp32 or int8 on onnxruntime, or an openvino profile for fp16/bf16 on a CPU that has it")
        return super().precision_problem()

    def available(self) -> tuple[bool, str]:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            return False, f"onnxruntime is not installed ({exc}); pip install onnxruntime"
        return True, ""

    def version(self) -> str:
        import onnxruntime

        return onnxruntime.__version__

    def load(self, onnx_model: bytes) -> Runner:
        profile = self.profile
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = profile.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        level = profile.options.get("graph_optimization_level", "all")
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[level])
        opts.log_severity_level = 3
        sess = ort.InferenceSession(onnx_model, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name

        def run(x: np.ndarray) -> list[np.ndarray]:
            return sess.run(None, {name: x})

        return run
