"""Runtime targets: load ONNX and run it here, timed by the one timing routine.

A subclass only says how to load a model (`load`); the rounds, the interleaving and the
canary (a fixed small model on the same runtime that gauges outside load) live here.
"""

from __future__ import annotations

import random
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from profiler.backends.base import ModelSource, OnDone, Runner, Target
from profiler.interleave import Canary, measure_many
from profiler.onnx_io import to_onnx
from profiler.provenance import host_info
from profiler.timing import Round, Timing, estimate

CANARY_MODEL = "conv3x3 16-32-16 at 16x16"


class RuntimeTarget(Target):
    kind = "runtime"
    source = "measured"

    def __init__(self, profile) -> None:
        super().__init__(profile)
        self._canary: Canary | None = None
        self._seed_medians: list[float] | None = None

    @abstractmethod
    def load(self, model: bytes) -> Runner:
        """Compile/load the model for the profile's device; the runner maps an input to outputs."""

    def runner(self, model: bytes) -> Runner:
        return self.load(model)

    def describe(self) -> str:
        p = self.profile
        return f"{self.name} {self.version()}, {p.threads} thread(s), {p.precision}, batch {p.batch_size}"

    def depends_on(self) -> dict[str, Any]:
        return {"target": self.name, "version": self.version(), "cpu": host_info()["cpu"]}

    # ---- the canary ------------------------------------------------------------
    @property
    def canary(self) -> Canary:
        if self._canary is None:
            self._canary = Canary(self._canary_runner(), self.profile.timing, self._seed_medians)
        return self._canary

    def _canary_runner(self) -> Callable[[], Any]:
        """The canary loaded on this runtime, ready to call (a target that times modules overrides it)."""
        net, shape = canary_net(self.profile.batch_size)
        return self._no_arg(to_onnx(net, shape))

    def state(self) -> dict[str, Any]:
        if self._canary is None and not self._seed_medians:
            return {}
        c = self.canary
        return {"canary": {"model": CANARY_MODEL, "ref_ms": round(c.ref_ms, 5), "floor_ms": round(c.floor_ms, 5),
                           "medians": [round(m, 5) for m in c.medians]}}

    def restore(self, state: dict[str, Any]) -> None:
        try:
            medians = [float(m) for m in state["canary"]["medians"]]
        except (KeyError, TypeError, ValueError):
            return
        if self._canary is None:
            self._seed_medians = medians or None

    def reestimate(self, rounds: list[Round], final: bool = True) -> Timing | None:
        if not rounds:
            return None
        return estimate(rounds, self.profile.timing, self.canary.ref_ms, final=final)

    # ---- costing -----------------------------------------------------------------
    def _no_arg(self, model: bytes):
        run = self.load(model)
        x = np.random.default_rng(0).standard_normal(_input_shape(model, self.profile.batch_size)).astype(np.float32)
        return lambda: run(x)

    def cost_many(self, models: dict[str, ModelSource], rng: random.Random, on_done: OnDone | None = None,
                  progress: bool = True, desc: str = "measure", deadline: float | None = None) -> dict[str, Timing]:
        loaders = {k: (lambda src=src: self._no_arg(src())) for k, src in models.items()}
        return measure_many(loaders, self.profile.timing, self.canary, rng, on_done=on_done, progress=progress,
                            desc=desc, deadline=deadline)


def canary_net(batch: int) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """The canary model (CANARY_MODEL, seeded weights) and its input shape at `batch`."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(32, 16, 3, padding=1))
    return net, (batch, 16, 16, 16)


def _input_shape(model: bytes, batch: int) -> tuple[int, ...]:
    """The first input's shape; a dynamic dimension (the batch) is the profile's batch size."""
    import onnx

    graph = onnx.load_from_string(model).graph
    inits = {i.name for i in graph.initializer}
    inp = next(i for i in graph.input if i.name not in inits)
    return tuple(d.dim_value if d.dim_value > 0 else batch for d in inp.type.tensor_type.shape.dim)
