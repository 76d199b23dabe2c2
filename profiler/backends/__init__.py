"""Targets by name (DESIGN §5): a registry of plugins behind one interface (`base.Target`).

Each is real code; one whose runtime is absent says why via `available()`. Modules are
imported when a target is asked for, so an absent optional dependency costs nothing.
Adding a device kind means adding an entry here, never editing the callers.
"""

from __future__ import annotations

import importlib

from hwofa.common import UserError
from profiler.backends.base import TARGET_KINDS, Runner, Target
from profiler.profiles import DeviceProfile

TARGETS: dict[str, str] = {
    "onnxruntime": "profiler.backends.onnxruntime:OnnxRuntimeTarget",
    "openvino": "profiler.backends.openvino:OpenVinoTarget",
    "tensorrt": "profiler.backends.tensorrt:TensorRTTarget",
    "torch-cuda": "profiler.backends.torch_cuda:TorchCudaTarget",
    "zigzag": "profiler.backends.zigzag:ZigZagTarget",
    "command": "profiler.backends.command:CommandTarget",
}


def target_class(backend: str) -> type[Target]:
    if backend not in TARGETS:
        raise UserError(f"unknown backend '{backend}'; known backends: {', '.join(TARGETS)}.")
    module, cls = TARGETS[backend].split(":")
    return getattr(importlib.import_module(module), cls)


def get_target(profile: DeviceProfile, require: bool = True) -> Target:
    """The target for `profile`. With `require`, one that cannot run here, or cannot honour the
    profile's precision, is a UserError (exit 2) saying why."""
    target = target_class(profile.backend)(profile)
    if require:
        ok, why = target.available()
        if not ok:
            raise UserError(f"device '{profile.name}' cannot run on this machine: {why}.")
        problem = target.precision_problem()
        if problem is not None:
            raise UserError(f"device '{profile.name}' asks for {profile.precision}, which it cannot honour: {problem}.")
    return target


__all__ = ["TARGETS", "TARGET_KINDS", "Runner", "Target", "get_target", "target_class"]
