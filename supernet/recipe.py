"""Training recipe: a small dataclass read from YAML (safe_load), validated with clear errors."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from hwofa.common.errors import UserError
from supernet.space import SearchSpace

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
DEFAULT_RECIPE = RECIPES_DIR / "fashion_mnist.yaml"


KD_TEACHERS = ("frozen", "inplace")


@dataclass
class Phase:
    """One progressive-shrinking phase; `None` for a dimension means 'all of the space'."""

    name: str
    epochs: int
    lr: float
    kernel_sizes: list[int] | None = None
    expand_ratios: list[int] | None = None
    depths: list[int] | None = None
    resolutions: list[int] | None = None
    subnets_per_step: int = 1
    kd_ratio: float = 0.0
    # who teaches when kd_ratio > 0: 'frozen', the full network as it stood at the end of the first phase
    # (OFA); 'inplace', the step's largest subnet on the same images, its logits detached (BigNAS),
    # which needs subnets_per_step >= 2 (the sandwich's first subnet is the largest, trained on labels)
    kd_teacher: str = "frozen"
    sort_channels: bool = False


@dataclass
class Recipe:
    phases: list[Phase]
    space: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    # the train/validation split (and a train_limit subset) follows this seed; None: `seed`. Set it to
    # vary only initialisation, augmentation and subnet sampling across seeds (benchmarks/ps_ablation.py)
    split_seed: int | None = None
    batch_size: int = 128  # images per optimiser step, over all data-parallel ranks together
    # BN batch statistics are taken over micro-batches of this size (gradients accumulated over them);
    # fixing it makes a run's arithmetic independent of the number of ranks. None: batch_size / ranks.
    micro_batch_size: int | None = None
    val_size: int = 5000
    weight_decay: float = 5e-5
    kd_temperature: float = 1.0
    grad_clip: float = 5.0
    bn_calib_images: int = 2000
    max_steps_per_epoch: int | None = None
    train_limit: int | None = None

    @property
    def data_seed(self) -> int:
        return self.seed if self.split_seed is None else self.split_seed

    def search_space(self) -> SearchSpace:
        return SearchSpace.from_dict(self.space) if self.space else SearchSpace()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "recipe") -> Recipe:
        if not isinstance(data, dict) or not isinstance(data.get("phases"), list) or not data["phases"]:
            raise UserError(f"{source}: a recipe needs a non-empty 'phases' list.")
        _check_keys(data, cls, source)
        phases = []
        for i, p in enumerate(data["phases"]):
            if not isinstance(p, dict):
                raise UserError(f"{source}: phase {i} must be a mapping.")
            _check_keys(p, Phase, f"{source} phase {i}")
            try:
                phases.append(Phase(**p))
            except TypeError as exc:
                raise UserError(f"{source}: phase {i}: {exc}.") from exc
            if phases[-1].epochs < 1 or phases[-1].lr <= 0 or phases[-1].subnets_per_step < 1:
                raise UserError(f"{source}: phase '{phases[-1].name}' needs epochs >= 1, lr > 0 and "
                                "subnets_per_step >= 1.")
            ph = phases[-1]
            if ph.kd_teacher not in KD_TEACHERS:
                raise UserError(f"{source}: phase '{ph.name}' has kd_teacher '{ph.kd_teacher}'; choose one of "
                                f"{', '.join(KD_TEACHERS)}.")
            if ph.kd_teacher == "inplace" and ph.kd_ratio > 0 and ph.subnets_per_step < 2:
                raise UserError(f"{source}: phase '{ph.name}' distils in place (kd_teacher: inplace), which needs "
                                "subnets_per_step >= 2: the step's largest subnet is the teacher of the others.")
        recipe = cls(**{**data, "phases": phases})
        mb = recipe.micro_batch_size
        if not isinstance(recipe.batch_size, int) or recipe.batch_size < 1 or \
                (mb is not None and (not isinstance(mb, int) or mb < 1 or recipe.batch_size % mb)):
            raise UserError(f"{source}: batch_size ({recipe.batch_size}) must be a positive integer and a multiple "
                            f"of micro_batch_size ({mb}).")
        space = recipe.search_space()
        for ph in phases:
            for dim in ("kernel_sizes", "expand_ratios", "depths", "resolutions"):
                allowed = getattr(ph, dim)
                if allowed is not None and not set(allowed) <= set(getattr(space, dim)):
                    raise UserError(f"{source}: phase '{ph.name}' restricts {dim} to {allowed}, which is not a "
                                    f"subset of the space's {list(getattr(space, dim))}.")
        return recipe


def resolve_recipe(name: str | os.PathLike | None) -> Path:
    """A recipe file, or the name of one shipped in supernet/recipes/ (`cifar10`, `fashion_mnist_short`)."""
    if name is None:
        return DEFAULT_RECIPE
    path = Path(name)
    shipped = RECIPES_DIR / f"{name}.yaml"
    return shipped if not path.exists() and os.sep not in str(name) and shipped.is_file() else path


def load_recipe(path: str | os.PathLike | None = None) -> Recipe:
    path = resolve_recipe(path)
    if not path.is_file():
        raise UserError(f"recipe '{path}' does not exist.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"recipe '{path}' is not valid YAML: {exc}") from exc
    return Recipe.from_dict(data, source=f"recipe '{path}'")


def _check_keys(data: dict[str, Any], cls: type, source: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"{source}: unknown key(s) {unknown}; known keys are {sorted(known)}.")
