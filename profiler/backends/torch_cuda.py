"""torch on an NVIDIA GPU: the block or subnet module timed as a CUDA graph (DESIGN §5).

Each item is the torch module itself (`wants_module`: the LUT build and the export hand over
ModuleSources), in eval mode with BN folded as the ONNX export folds it, fp16 (or fp32) and
channels_last, cuDNN autotuning on, its input resident on the device, warmed up on a side stream
and captured into a CUDA graph; rounds are CUDA events around several graph replays
(profiler/backends/_cuda.py), scheduled by the one timing routine (interleaved rounds, a canary
graph, disturbed rounds replaced). No host copy happens inside a timed region.

The ONNX model stays the deployment artefact (fp32; the GPU computes at the profile's precision);
its latency in model.json is the same subnet timed here, labelled with the GPU's name. This target
cannot run an ONNX model (no onnxruntime-gpu or TensorRT is assumed), so `runner` is None and the
bundle's device checks say so; `benchmarks/gpu_check.py` checks fp16 parity of the modules.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch

from hwofa.common import UserError
from profiler.backends._cuda import OnGpu, gpu_facts
from profiler.backends._torch_graph import capture, cudnn_autotune
from profiler.backends.base import ModelSource, ModuleSource, OnDone, Runner
from profiler.backends.runtime import RuntimeTarget, canary_net
from profiler.interleave import measure_many
from profiler.timing import Timing


class TorchCudaTarget(OnGpu, RuntimeTarget):
    name = "torch-cuda"
    precisions = ("fp16", "fp32")
    wants_module = True

    def available(self) -> tuple[bool, str]:
        if not torch.cuda.is_available():
            built = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA (a CPU-only build)"
            return False, (f"no CUDA GPU is visible to torch {torch.__version__} (built with {built}); the "
                           "torch-cuda target needs an NVIDIA GPU and a CUDA build of torch")
        return True, ""

    def version(self) -> str:
        return torch.__version__

    def describe(self) -> str:
        p = self.profile
        return f"torch {self.version()} CUDA graphs on {gpu_facts()['gpu']}, {p.precision}, batch {p.batch_size}"

    # ---- costing ---------------------------------------------------------------------------
    def load(self, model: bytes) -> Runner:
        raise UserError("the torch-cuda target times torch modules as CUDA graphs; it cannot run an ONNX "
                        "model (pass a ModuleSource from profiler.build.model_source).")

    def runner(self, model: bytes) -> Runner | None:
        return None  # no ONNX runtime on the GPU here: the bundle's device checks say it was not checked

    def _canary_runner(self) -> Callable[[], Any]:
        net, shape = canary_net(self.profile.batch_size)
        return capture(net, shape, self.profile.precision)

    def cost_many(self, models: dict[str, ModelSource], rng: random.Random, on_done: OnDone | None = None,
                  progress: bool = True, desc: str = "measure", deadline: float | None = None) -> dict[str, Timing]:
        bad = [k for k, src in models.items() if not isinstance(src, ModuleSource)]
        if bad:
            raise TypeError(f"torch-cuda times torch modules: '{bad[0]}' is not a ModuleSource "
                            "(make it with profiler.build.model_source or subnet_source)")
        precision = self.profile.precision
        loaders = {k: (lambda src=src: capture(src.module, src.input_shape, precision)) for k, src in models.items()}
        with cudnn_autotune():
            self.note_gpu_state()
            return measure_many(loaders, self.profile.timing, self.canary, rng, on_done=on_done,
                                progress=progress, desc=desc, deadline=deadline)
