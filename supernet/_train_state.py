"""Checkpoint files that survive a kill at any instant.

An epoch's checkpoint writes the optimiser state and a copy of the weights under names that
carry their sha256 (`train_state/optimizer.<sha>.safetensors`, `train_state/supernet.<sha>.safetensors`),
then `supernet.safetensors`, then `supernet.json`, which names both hashes and is the commit
point. Files of older checkpoints are removed only after the commit. A kill between the
weights and the JSON leaves `supernet.safetensors` newer than the JSON; resume then reads the
committed copy under train_state/ instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import save

from hwofa.common.files import atomic_write_bytes, sha256_bytes, sha256_file

log = logging.getLogger(__name__)
STATE_DIR = "train_state"


def save_state(run: Path, what: str, tensors: dict[str, torch.Tensor]) -> str:
    """Write `tensors` to train_state/<what>.<sha16>.safetensors (atomically); returns the sha256."""
    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    sha = sha256_bytes(data)
    path = state_path(run, what, sha)
    if not path.is_file():
        atomic_write_bytes(path, data)
    return sha


def state_path(run: Path, what: str, sha: str | None) -> Path:
    """Where the state `what` with this sha lives (runs from before content-addressed names: the plain name)."""
    named = run / STATE_DIR / f"{what}.{(sha or '')[:16]}.safetensors"
    return named if sha and (named.is_file() or not (run / STATE_DIR / f"{what}.safetensors").is_file()) \
        else run / STATE_DIR / f"{what}.safetensors"


def committed_weights(run: Path, sha: str | None) -> Path:
    """The weights file that supernet.json's `weights_sha256` names."""
    path = run / "supernet.safetensors"
    if sha is None or (path.is_file() and sha256_file(path) == sha):
        return path
    kept = run / STATE_DIR / f"supernet.{sha[:16]}.safetensors"
    if kept.is_file():
        log.warning("%s is newer than supernet.json (a checkpoint was interrupted); resuming from %s", path, kept)
        return kept
    return path


def prune_state(run: Path, keep: set[str]) -> None:
    """Remove the optimiser states and weight copies of earlier checkpoints (after a commit)."""
    keep16 = {k[:16] for k in keep}
    for what in ("optimizer", "supernet"):
        for p in (run / STATE_DIR).glob(f"{what}.*.safetensors"):
            if p.name.split(".")[1] not in keep16:
                p.unlink(missing_ok=True)
        (run / STATE_DIR / f"{what}.safetensors").unlink(missing_ok=True)
