"""The reference runtime and the one way to run a model over a dataset.

ONNX Runtime on this CPU, all cores: every export is checked on it (parity, test top-1 of the fp32
and the int8 model) and the accuracy predictor's training set is measured on it. A device's own
runtime (`Target.runner`) goes through the same `batched` / `predictions`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from profiler.backends import Runner, get_target
from profiler.profiles import DeviceProfile
from supernet import preprocess

Logits = Callable[[np.ndarray], np.ndarray]


def reference_profile() -> DeviceProfile:
    """ONNX Runtime on this CPU, all cores, fp32 model as given (an int8 QDQ model runs as int8)."""
    return DeviceProfile(name="onnxruntime-check", backend="onnxruntime", threads=os.cpu_count() or 1)


def reference_runner(model: bytes) -> Runner:
    """`model` loaded on the reference runtime."""
    return get_target(reference_profile()).runner(model)


def batched(run: Runner, batch: int) -> Logits:
    """Logits for any number of inputs, run in chunks of `batch` (engines built for a fixed batch get a
    zero-padded last chunk)."""
    def logits(x: np.ndarray) -> np.ndarray:
        outs = []
        for i in range(0, len(x), batch):
            chunk = x[i:i + batch]
            n = len(chunk)
            if n < batch:
                chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), chunk.dtype)])
            outs.append(run(np.ascontiguousarray(chunk))[0][:n])
        return np.concatenate(outs)

    return logits


def predictions(logits: Logits, images: torch.Tensor, resolution: int, mean: Sequence[float],
                std: Sequence[float], chunk: int = 1000, desc: str | None = None) -> np.ndarray:
    """Predicted class of every uint8 image (N×C×H×W), preprocessed as model.json says, `chunk` at a time
    (a progress bar named `desc` when given)."""
    out = []
    starts = range(0, len(images), chunk)
    for i in tqdm(starts, desc=desc, unit="chunk", leave=False) if desc else starts:
        x = preprocess(images[i:i + chunk], resolution, list(mean), list(std)).numpy()
        out.append(logits(np.ascontiguousarray(x)).argmax(1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def top1(pred: np.ndarray, labels: torch.Tensor | np.ndarray) -> float:
    labels = labels.numpy() if isinstance(labels, torch.Tensor) else labels
    return float((pred == labels).mean())
