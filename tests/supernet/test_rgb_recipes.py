"""The RGB recipes (CIFAR-10, image folder) end to end: train, predictor, profile, search, export.

Each test keeps its recipe's macro structure (3 input channels, stem, stage widths and strides,
head) and narrows the elastic choices and the schedule so that it runs in seconds on a CPU.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from hwofa.cli import main
from supernet import Supernet, load_recipe
from supernet.recipe import RECIPES_DIR

FAST = """backend: onnxruntime
timing: {warmup_runs: 10, warmup_s: 0.01, round_runs: 5, round_s: 0.005, rounds: 3, max_rounds: 6}
calibration: {subnets: 20, seed: 0, retry_s: 0}
"""


def quick(name: str, resolutions: list[int], **space: object) -> dict:
    """The shipped recipe `name` with fewer elastic choices and a few steps of two phases."""
    data = yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())
    data["space"].update(resolutions=resolutions, kernel_sizes=[3, 5], expand_ratios=[3, 6], depths=[1, 2], **space)
    return {**data, "batch_size": 8, "val_size": 10, "bn_calib_images": 16, "max_steps_per_epoch": 2,
            "phases": [{"name": "full", "epochs": 1, "lr": 3.0e-3, "kernel_sizes": [5], "expand_ratios": [6],
                        "depths": [2]},
                       {"name": "elastic", "epochs": 1, "lr": 1.0e-3, "subnets_per_step": 3, "kd_ratio": 1.0,
                        "sort_channels": True}]}


def end_to_end(capsys, tmp_path: Path, dataset: str, data_dir: Path, recipe: dict) -> dict:
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (tmp_path / "tinycpu.yaml").write_text(FAST)
    run, out, device = tmp_path / "run", tmp_path / "out", tmp_path / "tinycpu.yaml"
    steps = [["train", "--dataset", dataset, "--data-dir", data_dir, "--recipe", tmp_path / "recipe.yaml",
              "--out", run],
             ["predictor", "--supernet", run, "--subnets", 10, "--data-dir", data_dir],
             ["profile", "--device", device, "--supernet", run],
             ["search", "--device", device, "--latency-ms", "1e9", "--supernet", run, "--out", tmp_path / "s.json",
              "--data-dir", data_dir],  # search measures its finalists: exported from the run's dataset
             ["export", "--search", tmp_path / "s.json", "--device", device, "--supernet", run, "--out", out,
              "--data-dir", data_dir]]
    for argv in steps:
        code = main([str(a) for a in argv])
        assert code == 0, capsys.readouterr().err[-1500:]
    return json.loads((out / "model.json").read_text())


def test_cifar10_recipe_end_to_end(capsys, tmp_path):
    root = tmp_path / "data" / "cifar-10-batches-py"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [*((f"data_batch_{i}", 12) for i in range(1, 6)), ("test_batch", 20)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        (root / name).write_bytes(pickle.dumps(batch))
    model = end_to_end(capsys, tmp_path, "cifar10", tmp_path / "data", quick("cifar10", [24, 32]))
    assert model["onnx"]["input_shape"][:2] == [1, 3] and len(model["preprocess"]["mean"]) == 3
    assert model["arch"]["resolution"] in (24, 32) and len(model["arch"]["stages"]) == 5


def test_image_folder_recipe_end_to_end(capsys, tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 12), ("test", 4)):
        for cls in ("cat", "dog"):
            (tmp_path / "data" / split / cls).mkdir(parents=True)
            for i in range(n):
                h, w = rng.integers(64, 97, 2)
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
                    tmp_path / "data" / split / cls / f"{i}.png")
    model = end_to_end(capsys, tmp_path, "imagefolder", tmp_path / "data",
                       quick("imagefolder", [64, 96], num_classes=2))
    assert model["onnx"]["input_shape"][:2] == [1, 3] and model["arch"]["resolution"] in (64, 96)


@pytest.mark.parametrize("name", ["cifar10", "imagefolder", "fashion_mnist_short"])
def test_shipped_recipes_build_and_train_a_step(name):
    """The full spaces (not narrowed): the largest and smallest subnet run forward and backward."""
    space = load_recipe(name).search_space()
    net = Supernet(space)
    for arch in (space.largest(), space.smallest()):
        net.set_arch(arch)
        x = torch.randn(2, space.in_channels, arch.resolution, arch.resolution)
        net(x).sum().backward()
        assert net(x).shape == (2, space.num_classes)
