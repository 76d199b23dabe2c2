"""What `<run>/supernet.json` says about a supernet, as typed, frozen records.

Every later stage (BN calibration, predictor, search, export) reads the dataset's
normalisation and split, the weights' hash and the space from here, never by string key.
`from_dict` checks a parsed file and `to_dict` writes the same format back; fields this
module does not model (training progress, history, metrics, image size, ...) travel along.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from hwofa.common.errors import UserError
from hwofa.common.files import require_fields
from supernet.space import SearchSpace

FORMAT = "hwofa-supernet/1"
_DATASET_FIELDS = ("name", "sha256", "mean", "std", "classes", "val_size", "split_seed")
_META_FIELDS = ("format", "dataset", "recipe", "progress", "history", "metrics", "space", "weights_sha256",
                "code_version")


@dataclass(frozen=True)
class DatasetInfo:
    """The dataset a supernet was trained on: its identity, normalisation and validation split."""

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val_size: int
    split_seed: int
    sha256: str | None = None  # None: written before fingerprints were recorded; not checked then
    classes: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # image_size, train_images, ...

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str | os.PathLike) -> DatasetInfo:
        require_fields(d, {"name": str, "mean": list, "std": list, "val_size": int, "split_seed": int},
                       "supernet (dataset)", path)
        classes = d.get("classes")
        return cls(name=d["name"], mean=tuple(d["mean"]), std=tuple(d["std"]), val_size=d["val_size"],
                   split_seed=d["split_seed"], sha256=d.get("sha256"),
                   classes=tuple(classes) if isinstance(classes, list) else None,
                   extra={k: v for k, v in d.items() if k not in _DATASET_FIELDS})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.sha256 is not None:
            out["sha256"] = self.sha256
        out.update({"mean": list(self.mean), "std": list(self.std)})
        if self.classes is not None:
            out["classes"] = list(self.classes)
        return {**out, "val_size": self.val_size, "split_seed": self.split_seed, **self.extra}


@dataclass(frozen=True)
class SupernetMeta:
    """The whole of supernet.json: space, dataset, recipe (as written), weights hash, training record."""

    space: SearchSpace
    dataset: DatasetInfo
    recipe: dict[str, Any]
    weights_sha256: str
    code_version: str = "unknown"
    progress: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # top-level fields this module does not model

    @property
    def bn_calib_images(self) -> int:
        """How many training images BN statistics are recalibrated on (the recipe's `bn_calib_images`)."""
        return self.recipe["bn_calib_images"]

    @classmethod
    def from_dict(cls, meta: Any, path: str | os.PathLike) -> SupernetMeta:
        """Check a parsed supernet.json (`path` names it in messages) and build the record."""
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or "space" not in meta:
            raise UserError(f"supernet: '{path}' is not a hwofa supernet description (format '{FORMAT}').")
        require_fields(meta, {"space": dict, "dataset": dict, "recipe": dict, "weights_sha256": str}, "supernet",
                       path)
        dataset = DatasetInfo.from_dict(meta["dataset"], path)
        require_fields(meta["recipe"], {"bn_calib_images": int}, "supernet (recipe)", path)
        return cls(space=SearchSpace.from_dict(meta["space"]), dataset=dataset, recipe=meta["recipe"],
                   weights_sha256=meta["weights_sha256"], code_version=str(meta.get("code_version", "unknown")),
                   progress=_of(meta, "progress", dict), history=_of(meta, "history", list),
                   metrics=_of(meta, "metrics", dict),
                   extra={k: v for k, v in meta.items() if k not in _META_FIELDS})

    def to_dict(self) -> dict[str, Any]:
        """supernet.json's content, in the file's field order."""
        return {"format": FORMAT, "dataset": self.dataset.to_dict(), "recipe": self.recipe,
                "progress": self.progress, "history": self.history, "metrics": self.metrics, **self.extra,
                "space": self.space.to_dict(), "weights_sha256": self.weights_sha256,
                "code_version": self.code_version}


def _of(meta: dict[str, Any], key: str, kind: type) -> Any:
    value = meta.get(key)
    return value if isinstance(value, kind) else kind()
