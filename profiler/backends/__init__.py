"""Backends by name. Each is real code; one whose runtime is absent says why via `available()`."""

from __future__ import annotations

from profiler.backends.base import Backend, Runner
from profiler.backends.onnxruntime import OnnxRuntimeBackend
from profiler.backends.openvino import OpenVinoBackend
from profiler.backends.tensorrt import TensorRTBackend
from supernet import UserError

BACKENDS: dict[str, type] = {"onnxruntime": OnnxRuntimeBackend, "openvino": OpenVinoBackend,
                             "tensorrt": TensorRTBackend}


def get_backend(name: str, require: bool = True) -> Backend:
    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}'; known backends: {', '.join(BACKENDS)}.")
    backend = BACKENDS[name]()
    ok, why = backend.available()
    if require and not ok:
        raise UserError(f"backend '{name}' cannot run on this machine: {why}.")
    return backend


__all__ = ["BACKENDS", "Backend", "Runner", "get_backend"]
