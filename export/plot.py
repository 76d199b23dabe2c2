"""pareto.png: the search's accuracy/latency front with the chosen subnet."""

from __future__ import annotations

import io
import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hwofa.common import atomic_write_bytes  # noqa: E402
from supernet import ArchSpec  # noqa: E402


def pareto_png(path: str | os.PathLike, front: list[dict[str, Any]], chosen: ArchSpec, measured_ms: float,
               measured_top1: float, budget_ms: float | None, device: str) -> None:
    pts = sorted(front, key=lambda p: p["latency_ms"])
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.plot([p["latency_ms"] for p in pts], [100 * p["top1"] for p in pts], "o-", color="tab:blue", ms=4,
            label="Pareto front (predicted latency, predicted val top-1)")
    mine = [p for p in pts if ArchSpec.from_dict(p["arch"]) == chosen]
    if mine:
        ax.plot(mine[0]["latency_ms"], 100 * mine[0]["top1"], "*", color="tab:orange", ms=14,
                label="chosen (predicted)")
    ax.plot(measured_ms, 100 * measured_top1, "D", color="tab:red", ms=7,
            label="chosen (measured p50, test top-1)")
    if budget_ms is not None:
        ax.axvline(budget_ms, color="gray", ls="--", lw=1, label=f"budget {budget_ms:g} ms")
    ax.set_xlabel(f"latency on {device} (ms)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"hwofa search on {device}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
