"""OpenVINO, CPU plugin. fp32 is forced unless the profile asks for bf16 or int8: CPUs with
AVX512-BF16 would otherwise run fp32 models in bf16 and break parity."""

from __future__ import annotations

import numpy as np

from profiler.backends.base import Runner
from profiler.backends.runtime import RuntimeTarget

_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}


class OpenVinoTarget(RuntimeTarget):
    name = "openvino"

    def available(self) -> tuple[bool, str]:
        try:
            import openvino  # noqa: F401
        except ImportError as exc:
            return False, f"openvino is not installed ({exc}); pip install 'hwofa[openvino]'"
        return True, ""

    def version(self) -> str:
        import openvino

        return openvino.get_version()

    def load(self, onnx_model: bytes) -> Runner:
        profile = self.profile
        import openvino as ov

        core = ov.Core()
        model = core.read_model(onnx_model, b"")
        config = {"INFERENCE_PRECISION_HINT": _PRECISION[profile.precision],
                  "INFERENCE_NUM_THREADS": profile.threads,
                  "PERFORMANCE_HINT": profile.options.get("performance_hint", "LATENCY")}
        compiled = core.compile_model(model, profile.options.get("device", "CPU"), config)
        request = compiled.create_infer_request()

        def run(x: np.ndarray) -> list[np.ndarray]:
            res = request.infer({0: x})
            return [np.asarray(res[out]) for out in compiled.outputs]

        return run
