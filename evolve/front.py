"""A device's Pareto front of predicted top-1 against predicted latency, found by NSGA-II (DEAP).

One search answers every budget: `Front.under(budget_ms, k)` reads the k most accurate points
that fit. The loop is NSGA-II over the shared toolbox (evolve/operators.py): crowded binary
tournaments, crossover, mutation, the bounded repair into `max_latency_ms` (the largest latency of
interest), `tools.selNSGA2` over parents and children with one individual per arch. The front is
the non-dominated set of every arch evaluated, and it always holds the exact minimum-latency arch.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from deap import base, creator, tools

from evolve._fast import AccuracyCache, AccuracyModel, GenomeLatency, GenomeLayout, LatencyModel
from evolve.ea import sweep
from evolve.genome import gene_ranges
from evolve.operators import (
    breed,
    check_budget,
    check_feasible,
    clone,
    crowded_tournament,
    infeasible,
    initial,
    make_toolbox,
    score,
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


def adopt(kids: list[Any], genomes: np.ndarray, own: list[Any], pop: list[Any], latency: GenomeLatency,
          budget: float) -> list[Any]:
    """This device's candidates among all devices' children (`genomes`: theirs as one array, all scored):
    its own, and a copy of each other child that fits its limit and that no member of its population
    dominates or equals (such a child would rank behind the population, whose best front is usually full)."""
    if len(own) == len(kids):
        return own
    ranked = sorted((ind.latency_ms, ind.top1) for ind in pop)
    lats, best = [lat for lat, _ in ranked], list(itertools.accumulate((t for _, t in ranked), max))
    mine = {id(kid) for kid in own}
    out = []
    for kid, lat in zip(kids, latency.of_many(genomes), strict=True):
        if id(kid) in mine:
            out.append(kid)
            continue
        i = bisect.bisect_right(lats, lat)
        if lat <= budget and (i == 0 or best[i - 1] < kid.top1):
            ind = clone(kid)
            ind.latency_ms, ind.key, ind.top1 = lat, kid.key, kid.top1
            out.append(ind)
    return out


def _device_toolbox(space: SearchSpace, cache: AccuracyCache, latency: LatencyModel, rng: random.Random,
                    max_latency_ms: float | None, mutation_prob: float) -> base.Toolbox:
    if max_latency_ms is None:
        budget, fallback = math.inf, latency.min_latency()[1]
    else:
        budget, (_, fallback) = max_latency_ms, check_feasible(latency, max_latency_ms)
    tb = make_toolbox(space, cache, latency, budget, rng, fallback, mutation_prob,
                      individual=creator.FrontIndividual, objectives=2)
    tb.register("select_parent", crowded_tournament, rng=rng)
    tb.register("select", select_front)
    tb.register("adopt", adopt, latency=tb.latency, budget=budget)
    tb.seeds = (fallback, space.largest())
    return tb


def search_fronts(space: SearchSpace, accuracy: AccuracyModel | AccuracyCache,
                  latencies: Mapping[str, LatencyModel], rng: random.Random, population: int = 100,
                  generations: int = 500, max_latency_ms: Mapping[str, float | None] | None = None,
                  cx_prob: float = 0.9, mutation_prob: float | None = None) -> dict[str, Front]:
    """One front per device (`latencies`: device -> LUT), each up to its `max_latency_ms` (default: no limit).

    Devices are searched together: each generation every device breeds its share of `population`
    children, all are scored in one predictor batch, and every device selects from its own children plus
    the others' that fit its limit and that its population does not dominate. So breeding, the predictor
    and the arch cache are shared, and each device still sees up to `population` candidates a generation.
    A device's front therefore depends on which devices it was searched with (and on the seed).
    `mutation_prob` defaults to 1 / genome length: on the shipped space, 0.1 left the front about 0.2
    points of predicted top-1 below the single-budget search at a budget, 1 / length about level with it."""
    t0 = time.perf_counter()
    if not latencies:
        raise UserError("no device to search a front for.")
    mutation_prob = 1 / len(gene_ranges(space)) if mutation_prob is None else mutation_prob
    layout = GenomeLayout(space)
    cache = accuracy if isinstance(accuracy, AccuracyCache) else AccuracyCache(layout, accuracy)
    limits = dict(max_latency_ms or {})
    tbs = {d: _device_toolbox(space, cache, lat, rng, limits.get(d), mutation_prob) for d, lat in latencies.items()}
    pops = {d: tb.select(initial(tb, population, tb.seeds), population) for d, tb in tbs.items()}
    shares = [population // len(tbs) + (i < population % len(tbs)) for i in range(len(tbs))]
    for _ in range(generations):
        bred = {d: breed(tb, pops[d], n, cx_prob, rng) for (d, tb), n in zip(tbs.items(), shares, strict=True)}
        kids = [kid for own in bred.values() for kid in own]
        score(kids, layout, cache)  # one predictor batch for every device's children
        genomes = np.asarray(kids, dtype=np.int64)
        for d, tb in tbs.items():
            children = tb.adopt(kids, genomes, bred[d], pops[d])
            tb.evaluate(children)
            pops[d] = tb.select(pops[d] + children, population)
    seconds = time.perf_counter() - t0
    settings: dict[str, Any] = {"population": population, "generations": generations, "cx_prob": cx_prob,
                                "mutation_prob": mutation_prob, "predictor_calls": cache.calls,
                                "algorithm": "NSGA-II (selNSGA2), repair"}
    if len(tbs) > 1:  # the front depends on them; `seconds` is the joint search's
        settings["searched_with"] = sorted(tbs)
    return {d: Front([FrontPoint(tb.layout.arch(k), lat, top1) for k, lat, top1 in sweep(tb.archive)],
                     len(tb.archive), seconds, {**settings, "max_latency_ms": limits.get(d)})
            for d, tb in tbs.items()}


def search_front(space: SearchSpace, accuracy: AccuracyModel | AccuracyCache, latency: LatencyModel,
                 rng: random.Random, population: int = 100, generations: int = 500,
                 max_latency_ms: float | None = None, cx_prob: float = 0.9,
                 mutation_prob: float | None = None) -> Front:
    """The device's front of predicted top-1 against predicted latency up to `max_latency_ms` (default: no
    limit). Several devices: `search_fronts` (faster than one search each)."""
    return search_fronts(space, accuracy, {"device": latency}, rng, population, generations,
                         {"device": max_latency_ms}, cx_prob, mutation_prob)["device"]
