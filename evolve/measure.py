"""The accuracy predictor's training set: random subnets of a supernet, each with BN
recalibrated and its top-1 measured on the validation split (never the test split).

Evaluation runs the subnet exported the one way every stage exports (`profiler.to_onnx`) on the
reference runtime export checks on (`profiler.reference`: ONNX Runtime, all cores), which is
several times faster than eager PyTorch on a small CPU. The growing list is flushed
atomically after every few subnets; a killed build resumes without re-measuring.
"""

from __future__ import annotations

import logging
import os
import random
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hwofa.common import UserError, atomic_write_json, read_json
from profiler import to_onnx
from profiler.reference import batched, predictions, reference_runner
from supernet import ArchSpec, SearchSpace, calibrated_subnet, load_dataset, load_supernet, train_val_split

log = logging.getLogger(__name__)
SAMPLES_FILE = "predictor_samples.json"


def sample_archs(space: SearchSpace, n: int, seed: int) -> list[ArchSpec]:
    """n distinct archs from a seeded RNG; the largest and smallest always first."""
    rng = random.Random(seed)
    archs = [space.largest(), space.smallest()][:n]
    seen = {a.key() for a in archs}
    for _ in range(1000 * n):
        if len(archs) >= n:
            break
        a = space.sample(rng)
        if a.key() not in seen:
            seen.add(a.key())
            archs.append(a)
    return archs


def _onnx_top1(model: Any, images: Any, labels: Any, resolution: int, mean: list[float], std: list[float]) -> float:
    """Top-1 of the subnet's ONNX model on the reference runtime (what export checks its bundles on)."""
    return float(_onnx_correct(model, images, labels, resolution, mean, std).mean())


def _onnx_correct(model: Any, images: Any, labels: Any, resolution: int, mean: list[float],
                  std: list[float]) -> np.ndarray:
    """Per image: whether the subnet's ONNX model on the reference runtime gets it right."""
    model_bytes = to_onnx(model, (1, images.shape[1], resolution, resolution), dynamic_batch=True)
    return predictions(batched(reference_runner(model_bytes), 1000), images, resolution, mean, std) == labels


def measure_subnets(run: str | os.PathLike, n: int, seed: int = 0, data_dir: str | os.PathLike | None = None,
                    progress: bool = True) -> list[dict[str, Any]]:
    """Measured (arch, validation top-1) pairs, resumed from `<run>/predictor_samples.json`."""
    run = Path(run)
    net, meta = load_supernet(run)
    path = run / SAMPLES_FILE
    state = {"space_hash": net.space.space_hash(), "supernet_sha256": meta.weights_sha256, "seed": seed,
             "split": "validation", "samples": []}
    if path.is_file():
        old = read_json(path, "predictor samples")
        if {k: old.get(k) for k in ("space_hash", "supernet_sha256", "seed")} == \
                {k: state[k] for k in ("space_hash", "supernet_sha256", "seed")}:
            state["samples"] = old.get("samples", [])
        else:
            log.warning("%s belongs to another supernet or seed; measuring afresh", path)
    done = {ArchSpec.from_dict(s["arch"]).key() for s in state["samples"]}
    archs = [a for a in sample_archs(net.space, n, seed) if a.key() not in done]
    if not archs:
        return state["samples"][:n]
    for i, (arch, acc) in enumerate(_measured(net, meta, archs, data_dir, progress)):
        state["samples"].append({"arch": arch.to_dict(), "val_top1": acc})
        if i % 5 == 4 or i == len(archs) - 1:
            atomic_write_json(path, state)
    if len(state["samples"]) < n:
        raise UserError(f"the search space only holds {len(state['samples'])} distinct subnets; ask for fewer.")
    return state["samples"][:n]


def measure_archs(run: str | os.PathLike, archs: list[ArchSpec], data_dir: str | os.PathLike | None = None,
                  progress: bool = True, per_image: bool = False, split: str = "validation") -> list[Any]:
    """Top-1 of given archs, measured as the predictor's samples are (e.g. the search's picks), on the
    validation split; `split="test"` scores the test images instead (for benchmarks that check a figure
    against them, never to fit or choose). With `per_image`, each arch's right/wrong per image (bool array)."""
    net, meta = load_supernet(run)
    return [acc for _, acc in _measured(net, meta, archs, data_dir, progress, per_image, split)]


def _measured(net: Any, meta: Any, archs: list[ArchSpec], data_dir: str | os.PathLike | None, progress: bool,
              per_image: bool = False, split: str = "validation") -> Iterator[tuple[ArchSpec, Any]]:
    """(arch, top-1 on `split`) one by one: BN recalibrated, the ONNX model run on the reference runtime."""
    ds = meta.dataset
    data = load_dataset(ds.name, data_dir)
    if split == "test":
        vx, vy = data.test_x, data.test_y.numpy()
    elif split == "validation":
        _, val_idx = train_val_split(len(data.train_y), ds.val_size, ds.split_seed)
        vx, vy = data.train_x[val_idx], data.train_y[val_idx].numpy()
    else:
        raise ValueError(f"split {split!r}: 'validation' or 'test'")
    measure = _onnx_correct if per_image else _onnx_top1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for arch in tqdm(archs, desc="measure subnets", disable=not progress, unit="subnet"):
            model = calibrated_subnet(net, meta, data, arch)
            yield arch, measure(model, vx, vy, arch.resolution, list(ds.mean), list(ds.std))
