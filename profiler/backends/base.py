"""What a backend is: something that turns ONNX bytes into a callable runner on a device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from profiler.profiles import DeviceProfile

Runner = Callable[[np.ndarray], list[np.ndarray]]


class Backend(Protocol):
    name: str

    def available(self) -> tuple[bool, str]:
        """(True, '') when it can run here, else (False, why not)."""

    def version(self) -> str: ...

    def load(self, onnx_model: bytes, profile: DeviceProfile) -> Runner:
        """Compile/load the model for the profile's device; the runner maps an input to outputs."""
