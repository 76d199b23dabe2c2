"""ONNX Runtime, CPU execution provider."""

from __future__ import annotations

import numpy as np

from profiler.backends.base import Runner
from profiler.backends.runtime import RuntimeTarget

_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}


class OnnxRuntimeTarget(RuntimeTarget):
    name = "onnxruntime"

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
