"""A device's Pareto front of predicted top-1 against predicted latency, found by NSGA-II (DEAP).

One search answers every budget: `Front.under(budget_ms, k)` reads the k most accurate points
that fit. The loop is NSGA-II over the shared toolbox (evolve/operators.py): crowded binary
tournaments, crossover, mutation, the bounded repair into `max_latency_ms` (the largest latency of
interest), `tools.selNSGA2` over parents and children with one individual per arch. The front is
the non-dominated set of every arch evaluated, and it always holds the exact minimum-latency arch.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from deap import creator, tools

from evolve._fast import AccuracyCache, AccuracyModel, LatencyModel
from evolve.ea import sweep
from evolve.operators import (
    breed,
    check_budget,
    check_feasible,
    crowded_tournament,
    infeasible,
    initial,
    make_toolbox,
    unique,
)
from hwofa.common import NUMBER, UserError, require_fields
from supernet import ArchSpec, SearchSpace

FORMAT = "hwofa-front/1"


@dataclass(frozen=True)
class FrontPoint:
    arch: ArchSpec
    predicted_latency_ms: float
    predicted_top1: float

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "predicted_latency_ms": self.predicted_latency_ms,
                "predicted_top1": self.predicted_top1}


@dataclass
class Front:
    """Non-dominated points sorted by latency (so also by top-1); the first is the fastest arch."""

    points: list[FrontPoint]
    evaluations: int = 0
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def under(self, budget_ms: float, k: int = 1) -> list[FrontPoint]:
        """The `k` most accurate points with predicted latency <= `budget_ms`, most accurate first."""
        check_budget(budget_ms)
        if not self.points:
            raise UserError("the Pareto front is empty; run the search again.")
        fits = [p for p in self.points if p.predicted_latency_ms <= budget_ms]
        if not fits:
            lowest = self.points[0]
            raise infeasible(budget_ms, lowest.predicted_latency_ms, lowest.arch.key())
        return sorted(fits, key=lambda p: (-p.predicted_top1, p.predicted_latency_ms))[:max(1, k)]

    def best_under(self, budget_ms: float) -> FrontPoint:
        return self.under(budget_ms, 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "points": [p.to_dict() for p in self.points], "evaluations": self.evaluations,
                "search_seconds": round(self.seconds, 3), "settings": self.settings}

    @classmethod
    def from_dict(cls, data: Any, source: str = "front") -> Front:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise UserError(f"{source} is not a hwofa Pareto front (format '{FORMAT}'); search again.")
        require_fields(data, {"points": list}, "front", source)
        points = []
        for i, p in enumerate(data["points"]):
            require_fields(p, {"arch": dict, "predicted_latency_ms": NUMBER, "predicted_top1": NUMBER},
                           f"front point {i}", source)
            points.append(FrontPoint(ArchSpec.from_dict(p["arch"], f"{source} point {i}"),
                                     float(p["predicted_latency_ms"]), float(p["predicted_top1"])))
        if any(a.predicted_latency_ms > b.predicted_latency_ms for a, b in itertools.pairwise(points)):
            raise UserError(f"{source}: the front's points are not sorted by latency; search again.")
        return cls(points, int(data.get("evaluations", 0)), float(data.get("search_seconds", 0.0)),
                   dict(data.get("settings", {})))


def select_front(pop: list[Any], k: int) -> list[Any]:
    """NSGA-II survival over one individual per arch (sets the crowding distances tournaments read)."""
    return tools.selNSGA2(unique(pop), k, nd="log")


def search_front(space: SearchSpace, accuracy: AccuracyModel | AccuracyCache, latency: LatencyModel,
                 rng: random.Random, population: int = 100, generations: int = 500,
                 max_latency_ms: float | None = None, cx_prob: float = 0.9, mutation_prob: float = 0.1) -> Front:
    """The front of predicted top-1 against predicted latency up to `max_latency_ms` (default: no limit).
    `accuracy` may be an `AccuracyCache` shared between devices, so each arch is predicted once."""
    t0 = time.perf_counter()
    if max_latency_ms is None:
        budget, fallback = math.inf, latency.min_latency()[1]
    else:
        budget, (_, fallback) = max_latency_ms, check_feasible(latency, max_latency_ms)
    tb = make_toolbox(space, accuracy, latency, budget, rng, fallback, mutation_prob,
                      individual=creator.FrontIndividual, objectives=2)
    tb.register("select_parent", crowded_tournament, rng=rng)
    tb.register("select", select_front)
    pop = tb.select(initial(tb, population, (fallback, space.largest())), population)
    for _ in range(generations):
        children = breed(tb, pop, population, cx_prob, rng)
        tb.evaluate(children)
        pop = tb.select(pop + children, population)
    points = [FrontPoint(tb.layout.arch(key), lat, top1) for key, lat, top1 in sweep(tb.archive)]
    return Front(points, len(tb.archive), time.perf_counter() - t0,
                 {"population": population, "generations": generations, "cx_prob": cx_prob,
                  "mutation_prob": mutation_prob, "max_latency_ms": max_latency_ms,
                  "algorithm": "NSGA-II (selNSGA2), repair"})
