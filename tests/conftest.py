"""Shared fixtures: a tiny search space, a tiny supernet trained in seconds, an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

TINY_SPACE = {"resolutions": [12, 16], "kernel_sizes": [3, 5], "expand_ratios": [3, 6], "depths": [1, 2],
              "num_stages": 2, "stem_channels": 8, "stage_channels": [8, 12], "stage_strides": [1, 2],
              "stage_se": [False, True], "stage_act": ["relu", "hswish"], "head_channels": 32}

TINY_RECIPE = {
    "seed": 0, "batch_size": 32, "val_size": 300, "bn_calib_images": 64, "max_steps_per_epoch": 4,
    "train_limit": 600, "space": TINY_SPACE,
    "phases": [
        {"name": "full", "epochs": 1, "lr": 3.0e-3, "kernel_sizes": [5], "expand_ratios": [6], "depths": [2]},
        {"name": "kernel", "epochs": 1, "lr": 1.0e-3, "expand_ratios": [6], "depths": [2], "subnets_per_step": 3,
         "kd_ratio": 1.0},
        {"name": "expand", "epochs": 2, "lr": 1.0e-3, "subnets_per_step": 3, "kd_ratio": 1.0,
         "sort_channels": True},
    ],
}


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep LUTs and downloads of the test run out of the user's ~/.cache."""
    os.environ["HWOFA_HOME"] = str(tmp_path_factory.mktemp("hwofa_home"))
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_recipe_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_RECIPE))
    return path


@pytest.fixture(scope="session")
def fmnist():
    from supernet import load_dataset

    return load_dataset("fashion-mnist", download=False)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_recipe_path: Path, fmnist) -> Path:
    """A tiny supernet trained for a few steps (seconds); good for plumbing, not for accuracy."""
    from supernet import load_recipe
    from supernet.train import Trainer

    run = tmp_path_factory.mktemp("tiny_run")
    Trainer(load_recipe(tiny_recipe_path), fmnist, run).fit()
    return run


@pytest.fixture(scope="session")
def tiny_run_with_predictor(tiny_run: Path) -> Path:
    from evolve import build_predictor

    build_predictor(tiny_run, n_subnets=24, seed=0)
    return tiny_run
