"""The one timing routine every runtime target goes through (DESIGN §5): rounds and the
burst-proof estimate of the undisturbed p50.

A *round* is a short window of consecutive calls (>= `round_runs`, >= `round_s`); its median
is what one window says about the item. Outside load comes in bursts that slow whole windows
down. A fixed canary model is timed just before every round: its reference is its 25th
percentile round median (the machine undisturbed); a round whose canary ran more than
`canary_tol` above it is disturbed and replaced. The estimate is the median of the densest group
of `rounds` quiet round medians, once they agree within `agree`: neither a burst nor one lucky
round can drag it. (Hosts also have short fast spells, when a neighbour pauses; the densest
group does not chase them: a figure they set would not hold when a user re-measures.)
`interleave.measure_many` schedules the rounds of many items in a random interleaved order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from profiler.profiles import TimingProtocol

_clock = time.perf_counter


@dataclass(frozen=True)
class Round:
    """One round of one item: its median, p90 and robust CV (ms), and the canary's median timed
    just before it (None without a canary)."""

    median_ms: float
    p90_ms: float
    cv: float
    n: int
    canary_ms: float | None = None

    def to_list(self) -> list[Any]:
        c = None if self.canary_ms is None else round(self.canary_ms, 5)
        return [round(self.median_ms, 5), round(self.p90_ms, 5), round(self.cv, 4), self.n, c]

    @classmethod
    def from_list(cls, v: list[Any]) -> Round:
        return cls(float(v[0]), float(v[1]), float(v[2]), int(v[3]), None if v[4] is None else float(v[4]))


@dataclass(frozen=True)
class Timing:
    """An item's latency: p50 (the estimate of the undisturbed median), p90 and how sure it is.

    `spread` is (max/min - 1) of the agreeing round medians; `rounds_replaced` counts rounds
    that were discarded (disturbed, or above the agreeing cluster); `converged` is False when
    `max_rounds` ran out before `rounds` undisturbed rounds agreed.
    """

    p50_ms: float
    p90_ms: float
    n: int
    cv: float
    rounds_used: int = 1
    rounds_replaced: int = 0
    spread: float = 0.0
    converged: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}


def time_round(run: Callable[[], Any], protocol: TimingProtocol) -> Round:
    """One call to refill caches (not recorded), then >= round_runs calls and >= round_s seconds.
    A runner that times itself on its device (`run.time_round(protocol)`, a GPU's CUDA events around
    graph replays) gives its own round; the scheduler, canary and estimate stay the same."""
    own = getattr(run, "time_round", None)
    if own is not None:
        return own(protocol)
    run()
    samples: list[float] = []
    start = _clock()
    while len(samples) < protocol.round_runs or _clock() - start < protocol.round_s:
        t0 = _clock()
        run()
        samples.append(_clock() - t0)
    return summarize_round(samples)


def summarize_round(samples_s: list[float]) -> Round:
    """Median, p90 and robust CV ((p75 - p25) / 1.349 / p50, which equals std/mean for normal
    data but ignores the rare multi-ms hiccup that dominates a plain std of sub-ms runs)."""
    ms = np.asarray(samples_s, dtype=float) * 1e3
    p25, p50, p75, p90 = np.percentile(ms, [25, 50, 75, 90])
    cv = float((p75 - p25) / 1.349 / p50) if p50 > 0 else 0.0
    return Round(float(p50), float(p90), cv, len(ms))


def warm_up(run: Callable[[], Any], protocol: TimingProtocol) -> None:
    start, count = _clock(), 0
    while count < protocol.warmup_runs or _clock() - start < protocol.warmup_s:
        run()
        count += 1


def disturbed(r: Round, canary_ref_ms: float | None, protocol: TimingProtocol) -> bool:
    """Outside load was heavy when the canary just before this round ran far above its reference."""
    if r.canary_ms is None or canary_ref_ms is None:
        return False
    return r.canary_ms > canary_ref_ms * (1 + protocol.canary_tol)


def normalized(r: Round, canary_level_ms: float | None) -> tuple[float, float]:
    """(median, p90) of a round scaled by canary_level / the canary's median around the round:
    outside load slows the canary and the item alike."""
    if r.canary_ms is None or canary_level_ms is None or r.canary_ms <= 0:
        return r.median_ms, r.p90_ms
    k = canary_level_ms / r.canary_ms
    return r.median_ms * k, r.p90_ms * k


def densest_group(values: list[float], size: int) -> tuple[list[int], float]:
    """Indices of the `size` values with the smallest relative spread (max/min - 1), and that spread:
    the mode of the rounds, which neither a burst nor one lucky round can drag."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    best, spread = order[:size], float("inf")
    for a in range(len(order) - size + 1):
        lo, hi = values[order[a]], values[order[a + size - 1]]
        s = hi / lo - 1 if lo > 0 else float("inf")
        if s < spread:
            best, spread = order[a:a + size], s
    return best, spread


def estimate(rounds: list[Round], protocol: TimingProtocol, canary_ref_ms: float | None = None,
             final: bool = False) -> Timing | None:
    """The item's Timing once `rounds` quiet rounds (canary within `canary_tol` of its reference)
    agree within `agree`; None while they do not. With `final` (rounds ran out) it gives the best
    figure there is, marked not converged: if too few rounds were quiet, every round scaled by
    the canary's reference over its own canary (load slows the canary and the item alike)."""
    quiet = [r for r in rounds if not disturbed(r, canary_ref_ms, protocol)]
    if len(quiet) >= protocol.rounds:
        t = _densest(quiet, [(r.median_ms, r.p90_ms) for r in quiet], rounds, protocol)
        if t.converged or final:
            return t
    if not final:
        return None
    return _densest(rounds, [normalized(r, canary_ref_ms) for r in rounds], rounds, protocol)


def _densest(pool: list[Round], values: list[tuple[float, float]], rounds: list[Round],
             protocol: TimingProtocol) -> Timing:
    size = min(protocol.rounds, len(pool))
    group, spread = densest_group([m for m, _ in values], size)
    meds = [values[i][0] for i in group]
    return Timing(p50_ms=float(np.median(meds)), p90_ms=float(np.median([values[i][1] for i in group])),
                  n=int(sum(r.n for r in rounds)), cv=float(np.median([pool[i].cv for i in group])),
                  rounds_used=len(group), rounds_replaced=len(rounds) - len(group), spread=float(spread),
                  converged=size >= protocol.rounds and spread <= protocol.agree)


def measure_stable(run: Callable[[], Any], protocol: TimingProtocol | None = None,
                   canary: Callable[[], Any] | None = None) -> Timing:
    """One model through the timing routine (rounds, canary, replaced disturbed rounds)."""
    from profiler.interleave import measure_many

    return measure_many({"model": lambda: run}, protocol or TimingProtocol(), canary=canary,
                        progress=False)["model"]
