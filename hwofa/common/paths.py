"""Where things live: the supernet shipped inside the package, and how a `--supernet` choice resolves."""

from __future__ import annotations

import os
from pathlib import Path

SHIPPED_RUN = Path(__file__).resolve().parent.parent / "shipped"


def resolve_run(run: str | os.PathLike | None) -> Path:
    """The supernet run folder to use: `run` itself, or the shipped one when none is given."""
    return SHIPPED_RUN if run is None else Path(run)
