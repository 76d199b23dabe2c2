"""Self-describing supernet files: `<run>/supernet.safetensors` + `<run>/supernet.json`.

The JSON holds everything the next stage needs to rebuild the network (space, data
normalisation, validation split) plus the recipe, metrics and code version; it also
records the weights' sha256 so a mismatched pair is caught.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from hwofa.common.errors import UserError
from hwofa.common.files import atomic_write_bytes, atomic_write_json, read_json, sha256_file
from supernet.meta import FORMAT, SupernetMeta
from supernet.network import Supernet


def code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hwofa")
    except PackageNotFoundError:
        return "unknown"


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> str:
    """Atomically write a safetensors file; returns its sha256."""
    atomic_write_bytes(path, save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}))
    return sha256_file(path)


def load_tensors(path: str | os.PathLike, what: str, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what}: weights file '{path}' does not exist.")
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise UserError(f"{what}: '{path}' does not match the sha256 recorded in its JSON; the pair is "
                        "mismatched or the weights are corrupt.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{what}: cannot read '{path}' ({exc}).") from exc


def save_supernet(run: str | os.PathLike, net: Supernet, meta: dict[str, Any]) -> SupernetMeta:
    """Write weights, then the JSON that names their hash (so a crash never pairs stale files).

    `meta` holds what the trainer knows (dataset, recipe, progress, history, metrics); the space, the
    weights' hash and the code version are added here. The record is checked as a reader would check it.
    """
    run = Path(run)
    digest = save_tensors(run / "supernet.safetensors", net.state_dict())
    record = SupernetMeta.from_dict({"format": FORMAT, **meta, "space": net.space.to_dict(), "weights_sha256": digest,
                                     "code_version": code_version()}, run / "supernet.json")
    atomic_write_json(run / "supernet.json", record.to_dict())
    return record


def load_supernet(run: str | os.PathLike) -> tuple[Supernet, SupernetMeta]:
    """Rebuild a supernet from its run folder alone (`hwofa.common.resolve_run` picks the shipped one)."""
    run = Path(run)
    meta = SupernetMeta.from_dict(read_json(run / "supernet.json", "supernet"), run / "supernet.json")
    net = Supernet(meta.space)
    state = load_tensors(run / "supernet.safetensors", "supernet", meta.weights_sha256)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"supernet: weights in '{run}' do not fit the space in its JSON ({exc}).") from exc
    net.eval()
    return net, meta
