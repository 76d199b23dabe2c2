"""Finalists: the k best points of a device's front under its budget, measured end to end on the
device before one is chosen.

Predictions choose the finalists; a measurement (or, on a cost-model target, the model) chooses
among them: the most accurate finalist whose measured latency meets the budget ships. Measured
(not modelled) latency keeps a margin for the noise of measuring again (the machine's
repeatability from its LUT build): a finalist is chosen when it is within budget / (1 + margin).
When none is, the next points of the front below the fastest failing one are measured (at most
EXTRA_ROUNDS more rounds); when still none is, the most accurate that meets the budget itself is
kept, else the closest one, reported as missing its budget. A round's finalists are timed together
by the target's one routine (interleaved), as timing-only exports (BN not recalibrated: the same
graph, so the same latency); the chosen one's bundle model is measured again (see `settle`).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any

from export import Exporter
from export.exporter import Candidate
from hwofa.common import UserError
from profiler import Timing

log = logging.getLogger(__name__)
FINALISTS = 3
EXTRA_ROUNDS = 2
MAX_MARGIN = 0.10


@dataclass
class Finalist:
    """A front point and, once measured, its latency on the device."""

    point: Any  # evolve.FrontPoint: arch, predicted_latency_ms, predicted_top1
    source: str = "predicted"  # measured | modelled | predicted (not measured: the device does not run here)
    timing: Timing | None = None
    round: int = 0
    candidate: Candidate | None = field(default=None, repr=False)
    bundle_ms: float | None = None  # measured again on the bundle's own model, where that differs

    @property
    def ms(self) -> float:
        return self.timing.p50_ms if self.timing is not None else self.point.predicted_latency_ms

    def meets(self, budget_ms: float) -> bool:
        return self.ms <= budget_ms

    def to_dict(self, budget_ms: float) -> dict[str, Any]:
        out = {"arch": self.point.arch.to_dict(), "predicted_latency_ms": self.point.predicted_latency_ms,
               "predicted_top1": self.point.predicted_top1, "source": self.source, "round": self.round,
               "meets_budget": self.meets(budget_ms)}
        if self.timing is not None:
            key = "modelled_ms" if self.source == "modelled" else "measured_p50_ms"
            out[key] = self.timing.p50_ms
            if self.source == "measured":
                out["measured_p90_ms"] = self.timing.p90_ms
        if self.bundle_ms is not None:
            out["bundle_ms"] = self.bundle_ms
        return out


@dataclass
class Choice:
    """What the finalists showed: all of them, the chosen one, whether it meets the budget, and how."""

    finalists: list[Finalist]
    chosen: Finalist
    met: bool
    rounds: int
    measured: bool = True
    note: str = ""
    margin: float = 0.0  # room kept for re-measurement noise (a fraction of the budget's reach)

    def to_dict(self, budget_ms: float) -> dict[str, Any]:
        return {"finalists": [f.to_dict(budget_ms) for f in self.finalists], "rounds": self.rounds,
                "finalists_measured": self.measured, "met_budget": self.met,
                "margin_pct": round(100 * self.margin, 2), "note": self.note}


def measure_round(ex: Exporter, points: list[Any], rnd: int, rng: random.Random) -> list[Finalist]:
    """Time `points` on the device together (interleaved) through the target's routine."""
    cands = {p.arch.key(): ex.candidate(p.arch, calibrate=False) for p in points}
    timings = ex.target.cost_many({k: ex.source(c) for k, c in cands.items()}, rng,
                                  progress=False, desc="finalists")
    return [Finalist(p, ex.target.source, timings[p.arch.key()], rnd, cands[p.arch.key()]) for p in points]


def choose(ex: Exporter, front: Any, budget_ms: float, k: int = FINALISTS, rng: random.Random | None = None,
           extra_rounds: int = EXTRA_ROUNDS, margin: float = 0.0) -> Choice:
    """Measure the k most accurate front points under the budget and choose (see the module doc).
    `margin` (a fraction) keeps room for the noise of measuring again: a finalist is chosen when its
    measured latency is within budget / (1 + margin); one that only meets the budget itself is kept
    when none does."""
    rng = rng or random.Random(0)
    target = budget_ms / (1 + margin)
    points = sorted(_under(front, target, budget_ms, k), key=lambda p: -p.predicted_top1)
    finalists: list[Finalist] = []
    for rnd in range(1 + extra_rounds):
        measured = measure_round(ex, points, rnd, rng)
        finalists += measured
        ok = [f for f in measured if f.ms <= target]
        if ok:
            return Choice(finalists, max(ok, key=lambda f: f.point.predicted_top1), True, rnd + 1, margin=margin)
        points = next_points(front, measured, finalists, target, k)
        if not points:
            break
        log.warning("%s: no finalist within %.4g ms (fastest %s %.4g ms); measuring %d faster points of the front",
                    ex.profile.name, target, ex.target.source, min(f.ms for f in measured), len(points))
    met = [f for f in finalists if f.meets(budget_ms)]
    if met:
        return Choice(finalists, max(met, key=lambda f: f.point.predicted_top1), True, rnd + 1, margin=margin,
                      note=f"none within the {100 * margin:.1f} % margin; the most accurate that meets the budget "
                      "itself is kept")
    closest = min(finalists, key=lambda f: f.ms)
    note = (f"no finalist met the budget in {rnd + 1} round(s) of measurement ({len(finalists)} subnets; fastest "
            f"{ex.target.source} {closest.ms:.4g} ms against {budget_ms:g} ms); the closest is kept")
    return Choice(finalists, closest, False, rnd + 1, margin=margin, note=note)


def _under(front: Any, target: float, budget_ms: float, k: int) -> list[Any]:
    """The first finalists: under the budget less the margin, or under the budget where nothing is."""
    try:
        return front.under(target, k)
    except UserError:
        return front.under(budget_ms, k)


def next_points(front: Any, measured: list[Finalist], seen: list[Finalist], budget_ms: float, k: int) -> list[Any]:
    """Front points below the fastest failing finalist: the k most accurate under its predicted latency
    scaled by budget/measured (the shortfall it showed); where the front has nothing that fast, its k
    fastest points below that finalist. None when the front has nothing below it."""
    fastest = min(measured, key=lambda f: f.ms)
    done = {f.point.arch.key() for f in seen}
    try:
        pts = front.under(fastest.point.predicted_latency_ms * budget_ms / fastest.ms, k + len(done))
        pts = sorted((p for p in pts if p.arch.key() not in done), key=lambda p: -p.predicted_top1)
    except UserError:
        pts = [p for p in front.points if p.predicted_latency_ms < fastest.point.predicted_latency_ms
               and p.arch.key() not in done]  # the front is sorted by latency: the fastest first
    return pts[:k]


def predicted_only(front: Any, budget_ms: float, k: int, why: str) -> Choice:
    """Where the device does not run here: the finalists as predicted, the most accurate chosen, and why."""
    finalists = [Finalist(p) for p in sorted(front.under(budget_ms, k), key=lambda p: -p.predicted_top1)]
    return Choice(finalists, finalists[0], True, 0, measured=False,
                  note=f"finalists not measured ({why}); chosen from predictions alone")


def settle(ex: Exporter, choice: Choice, budget_ms: float) -> tuple[Candidate, Timing]:
    """The chosen finalist's bundle model (BN recalibrated) and its latency. The finalist's own figure
    stands where its model was already the bundle's (a verification cache hit); otherwise the bundle's
    model is measured again, and should that miss the budget the next finalist that met it is tried."""
    passing = sorted((f for f in choice.finalists if f is not choice.chosen and f.meets(budget_ms)),
                     key=lambda f: -f.point.predicted_top1) if choice.met else []
    best: tuple[Candidate, Timing, Finalist] | None = None
    for f in [choice.chosen, *passing]:
        cand = ex.candidate(f.point.arch)
        same = f.candidate is not None and cand.deployed.model_bytes == f.candidate.deployed.model_bytes
        timing = f.timing if same and f.timing is not None else ex.measure(cand)
        if not same:
            f.bundle_ms = timing.p50_ms
        if best is None or timing.p50_ms < best[1].p50_ms:
            best = (cand, timing, f)
        if timing.p50_ms <= budget_ms or not choice.met:
            best = (cand, timing, f)
            break
        log.warning("%s: the bundle's own model of the chosen finalist took %.4g ms > %.4g ms; trying the next",
                    ex.profile.name, timing.p50_ms, budget_ms)
    assert best is not None
    choice.chosen = best[2]
    return best[0], best[1]


def margin_for(source: str, repeatability_pct: float | None) -> float:
    """The margin for re-measurement noise: none for a cost model (deterministic); for a measurement, the
    machine's repeatability (median change of a subnet measured twice, from the LUT build), at most MAX_MARGIN."""
    if source != "measured" or not repeatability_pct:
        return 0.0
    return min(MAX_MARGIN, max(0.0, repeatability_pct / 100))
