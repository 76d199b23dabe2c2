"""fronts.png: every device's Pareto front in one figure, one panel per device, with its budget,
its measured finalists and the chosen subnet."""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hwofa.common import atomic_write_bytes  # noqa: E402


@dataclass
class Panel:
    """One device: its front (predicted), finalists (latency as `source` says), the chosen one, the budget."""

    device: str
    budget_ms: float
    front: list[tuple[float, float]]  # (predicted latency ms, predicted top-1 0..1)
    source: str = "measured"  # how the finalists' latency was obtained: measured | modelled | predicted
    finalists: list[tuple[float, float]] = field(default_factory=list)  # (latency ms, predicted top-1)
    chosen: tuple[float, float] | None = None  # (bundle latency ms, predicted top-1)


def fronts_png(path: str | os.PathLike, panels: list[Panel], title: str = "") -> None:
    n = len(panels)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 3.9 * rows + 0.5), dpi=120, squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        _draw(ax, panel)
        _inset(ax, panel)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, [lb.split(" (")[0] if lb.startswith(("finalists", "chosen")) else lb for lb in labels],
               loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _plot(ax: Any, p: Panel, small: bool = False) -> None:
    xs, ys = zip(*sorted(p.front), strict=True) if p.front else ((), ())
    ax.plot(xs, [100 * y for y in ys], "o-", color="tab:blue", ms=2 if small else 3, lw=1 if small else 1.2,
            label="Pareto front (predicted)")
    if p.finalists:
        ax.plot([f[0] for f in p.finalists], [100 * f[1] for f in p.finalists], "x", color="tab:green",
                ms=6 if small else 7, mew=1.5, label=f"finalists ({p.source})", zorder=4)
    if p.chosen is not None:
        ax.plot(p.chosen[0], 100 * p.chosen[1], "*", color="tab:red", ms=11 if small else 13, alpha=0.85,
                label=f"chosen ({p.source})", zorder=3)
    ax.axvline(p.budget_ms, color="gray", ls="--", lw=1, label="budget")


def _draw(ax: Any, p: Panel) -> None:
    _plot(ax, p)
    ax.set_xlabel(f"latency on {p.device} (ms)\nfront: predicted · finalists: {p.source}", fontsize=9)
    ax.set_ylabel("predicted val top-1 (%)", fontsize=9)
    ax.set_title(f"{p.device} · budget {p.budget_ms:g} ms", fontsize=10)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)


def _inset(ax: Any, p: Panel) -> None:
    """The finalists and the budget, enlarged, in the panel's empty lower right (a front is concave)."""
    pts = p.finalists + ([p.chosen] if p.chosen is not None else [])
    if not pts:
        return
    xs, ys = [x for x, _ in pts] + [p.budget_ms], [100 * y for _, y in pts]
    xpad = max(0.3 * (max(xs) - min(xs)), 0.02 * max(xs))
    ypad = max(0.3 * (max(ys) - min(ys)), 0.05)
    ins = ax.inset_axes([0.47, 0.08, 0.5, 0.46])
    _plot(ins, p, small=True)
    ins.set_xlim(min(xs) - xpad, max(xs) + xpad)
    ins.set_ylim(min(ys) - ypad, max(ys) + ypad)
    ins.tick_params(labelsize=6)
    ins.grid(alpha=0.3)
    ins.set_title("near the budget", fontsize=7, pad=2)
