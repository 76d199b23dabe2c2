"""Evolutionary search (DEAP) for the most accurate subnet under one latency budget.

A (mu + lambda) loop over a toolbox of named operators (evolve/operators.py). Every child is
repaired into the budget before it is evaluated; an infeasible budget is refused up front with
the smallest reachable latency. The predictor runs once per generation on the archs it has not
seen; latency comes straight from genomes (evolve/_fast.py). All randomness comes from the
passed-in `random.Random`. `search_front` (evolve/front.py) finds a whole front instead.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from deap import tools

from evolve._fast import AccuracyCache, AccuracyModel, GenomeLayout, Key, LatencyModel
from evolve.operators import breed, check_feasible, initial, make_toolbox, tournament, unique
from supernet import ArchSpec, SearchSpace


@dataclass
class SearchResult:
    arch: ArchSpec
    predicted_latency_ms: float
    predicted_top1: float
    pareto: list[dict[str, Any]] = field(default_factory=list)
    evaluations: int = 0
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "predicted_latency_ms": self.predicted_latency_ms,
                "predicted_top1": self.predicted_top1, "pareto": self.pareto, "evaluations": self.evaluations,
                "search_seconds": round(self.seconds, 3), "settings": self.settings}


def search(space: SearchSpace, accuracy: AccuracyModel | AccuracyCache, latency: LatencyModel, budget_ms: float,
           rng: random.Random, population: int = 64, generations: int = 40, offspring: int = 64,
           cx_prob: float = 0.7, mutation_prob: float = 0.1) -> SearchResult:
    """The most accurate arch the search finds with predicted latency <= `budget_ms`."""
    t0 = time.perf_counter()
    _, fallback = check_feasible(latency, budget_ms)
    tb = make_toolbox(space, accuracy, latency, budget_ms, rng, fallback, mutation_prob)
    tb.register("select_parent", tournament, rng=rng)
    tb.register("select", tools.selBest)
    pop = tb.select(unique(initial(tb, population, (fallback,))), population)
    for _ in range(generations):
        children = breed(tb, pop, offspring, cx_prob, rng)
        tb.evaluate(children)
        pop = tb.select(unique(pop + children), population)
    return _result(tb.layout, tb.archive, time.perf_counter() - t0,
                   {"population": population, "generations": generations, "offspring": offspring,
                    "cx_prob": cx_prob, "mutation_prob": mutation_prob, "algorithm": "mu+lambda, repair"})


def sweep(archive: dict[Key, tuple[float, float]]) -> list[tuple[Key, float, float]]:
    """The non-dominated (latency, top-1) points of an archive, by latency: each keeps a strict accuracy gain."""
    out: list[tuple[Key, float, float]] = []
    best = -math.inf
    for key, (lat, top1) in sorted(archive.items(), key=lambda kv: (kv[1][0], -kv[1][1], kv[0])):
        if top1 > best:
            out.append((key, lat, top1))
            best = top1
    return out


def _result(layout: GenomeLayout, archive: dict[Key, tuple[float, float]], seconds: float,
            settings: dict[str, Any]) -> SearchResult:
    front = sweep(archive)
    key, lat, top1 = front[-1]  # the most accurate; the fastest of equals
    pareto = [{"arch": layout.arch(k).to_dict(), "latency_ms": la, "top1": t} for k, la, t in front]
    return SearchResult(layout.arch(key), lat, top1, pareto, len(archive), seconds, settings)
