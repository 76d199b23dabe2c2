"""What a target is: one small interface that answers "what does this model cost on this device".

Three kinds sit behind it (DESIGN §5):
- `runtime`: loads ONNX and runs it here; timed by the one timing routine (rounds, canary).
- `cost-model`: computes latency from the model's layers (ZigZag); the figure is *modelled*.
- `command`: runs a model file through an external command and reads the latency it prints.

A target is made for one DeviceProfile. Callers (LUT build, calibration, export) hand it
ONNX models (already at the profile's precision, see `profiler.precision`) and get Timings
back; they never name a backend. A target that times the torch module itself (`wants_module`:
torch-cuda) gets ModuleSources, which carry the module beside the function making its ONNX.
`depends_on()` says what its figures depend on, and a cached table is reused only where all of
it still holds.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from profiler.profiles import DeviceProfile
from profiler.timing import Round, Timing

Runner = Callable[[np.ndarray], list[np.ndarray]]
ModelSource = Callable[[], bytes]  # produces an ONNX model's bytes when the target is ready for it


@dataclass(frozen=True)
class ModuleSource:
    """A ModelSource that also carries the torch module it exports and its input shape (at the profile's
    batch size): what `profiler.build.model_source` hands out. Calling it gives the ONNX bytes, as any
    ModelSource; a target with `wants_module` times `module` itself and never asks for the bytes."""

    module: torch.nn.Module
    input_shape: tuple[int, ...]
    make: ModelSource

    def __call__(self) -> bytes:
        return self.make()
OnDone = Callable[[str, Timing, list[Round]], None]

TARGET_KINDS = ("runtime", "cost-model", "command")


class Target(ABC):
    """A device as seen by the profiler. Subclasses set `kind`, `source` and `name`."""

    name: ClassVar[str]
    kind: ClassVar[str]
    source: ClassVar[str] = "measured"  # "measured" or "modelled": how every figure is labelled
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)  # what it can honour (the profile's is checked against it)
    int8_settings: ClassVar[Any] = None  # profiler.precision.QuantSettings the target needs (None: the CPU default)
    # True: it times the torch module, not the ONNX model (torch-cuda); cost/cost_many need ModuleSources
    wants_module: ClassVar[bool] = False

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile

    # ---- what it is ----------------------------------------------------------
    @abstractmethod
    def available(self) -> tuple[bool, str]:
        """(True, '') when it can run here, else (False, why not)."""

    @abstractmethod
    def version(self) -> str:
        """The runtime's / model's / command's version string (a cached LUT is stale when it changes)."""

    def depends_on(self) -> dict[str, Any]:
        """What the figures depend on beyond the profile and the space (CPU model, accelerator
        description hash, command and the device it reports...). Compared to a LUT header's."""
        return {"target": self.name, "version": self.version()}

    def label(self) -> str:
        """How its figures are labelled: 'measured: onnxruntime 1.32.0', 'modelled: zigzag-dse 3.9.1'."""
        return f"{self.source}: {self.name} {self.version()}"

    def precision_problem(self) -> str | None:
        """Why this target cannot honour the profile's precision here (None: it can)."""
        if self.profile.precision not in self.precisions:
            return (f"the {self.name} target runs {', '.join(self.precisions)}, not {self.profile.precision}; "
                    "choose a profile with a precision it supports")
        return None

    def describe(self) -> str:
        """One line for `hwofa devices`: what runs, and how (a command target shows its command)."""
        return f"{self.name} {self.profile.precision}"

    # ---- state carried in the LUT header between builds ------------------------
    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back `state()` from an interrupted build or a cached table (e.g. the canary's reference)."""
        return None

    def reestimate(self, rounds: list[Round], final: bool = True) -> Timing | None:
        """A figure from stored rounds on the target's current scale (runtimes); None: keep the stored one."""
        return None

    # ---- costing -------------------------------------------------------------
    @abstractmethod
    def cost_many(self, models: dict[str, ModelSource], rng: random.Random, on_done: OnDone | None = None,
                  progress: bool = True, desc: str = "measure", deadline: float | None = None) -> dict[str, Timing]:
        """The latency of every model (key -> a function returning its ONNX bytes). `on_done(key, timing,
        rounds)` is called as each finishes (rounds may be empty for a cost model), so a caller can flush."""

    def cost(self, model: bytes | ModelSource, rng: random.Random | None = None) -> Timing:
        """One model's latency (the export's measured or modelled figure): its ONNX bytes, or a source
        (a ModuleSource for a target that `wants_module`)."""
        source = model if callable(model) else (lambda: model)
        return self.cost_many({"model": source}, rng or random.Random(0), progress=False)["model"]

    def runner(self, model: bytes) -> Runner | None:
        """A callable that runs the model here (parity, accuracy on the device); None when the target
        cannot run models in-process (cost models, external commands)."""
        return None

    def detail(self, model: bytes) -> dict[str, Any]:
        """Extra facts about one model's figure for model.json (e.g. cycles, utilisation); may be empty."""
        return {}
