"""OpenVINO, CPU plugin. INFERENCE_PRECISION_HINT is set from the profile: f32 for fp32 (CPUs with
AVX512-BF16 would otherwise run fp32 models in bf16 and break parity), bf16/f16 only where the device
lists that capability (OPTIMIZATION_CAPABILITIES), and f32 for int8: the QDQ model's quantized ops run
in int8 (the plugin's low-precision transformations fold each QDQ pair into u8/i8 kernels), the rest
in fp32, as on the reference runtime."""

from __future__ import annotations

import numpy as np

from profiler.backends.base import Runner
from profiler.backends.runtime import RuntimeTarget

_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
_CAPABILITY = {"fp32": "FP32", "bf16": "BF16", "fp16": "FP16", "int8": "INT8"}


class OpenVinoTarget(RuntimeTarget):
    name = "openvino"
    precisions = ("fp32", "bf16", "fp16", "int8")

    def precision_problem(self) -> str | None:
        problem = super().precision_problem()
        if problem is not None or not self.available()[0]:
            return problem
        import openvino as ov

        device = self.profile.options.get("device", "CPU")
        try:
            caps = list(ov.Core().get_property(device, "OPTIMIZATION_CAPABILITIES"))
        except RuntimeError as exc:
            return f"OpenVINO cannot say what device '{device}' computes in ({exc})"
        if _CAPABILITY[self.profile.precision] not in caps:
            return (f"OpenVINO's {device} device on this machine does not list {_CAPABILITY[self.profile.precision]} "
                    f"among its capabilities ({', '.join(caps)}), so it would compute in another precision")
        return None

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
        ran = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        if ran != _PRECISION[profile.precision]:  # never a silent change of precision
            raise RuntimeError(f"OpenVINO compiled the model for {ran}, not {_PRECISION[profile.precision]} as "
                               f"the {profile.precision} profile asks")
        request = compiled.create_infer_request()

        def run(x: np.ndarray) -> list[np.ndarray]:
            res = request.infer({0: x})
            return [np.asarray(res[out]) for out in compiled.outputs]

        return run
