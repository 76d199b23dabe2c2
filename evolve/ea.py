"""Evolutionary search (DEAP) for the most accurate subnet under a latency budget.

A (mu + lambda) loop over a toolbox of named operators. Every individual is repaired into
the budget before it is evaluated: `repair` lowers one active gene at a time (each step
strictly lowers the predicted latency, so it ends), falling back to the exact
minimum-latency arch. An infeasible budget is refused up front with the smallest reachable
latency. All randomness comes from the passed-in `random.Random`.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from deap import base, creator, tools

from evolve.genome import active_genes, decode, encode, gene_ranges
from hwofa.common import UserError
from supernet import ArchSpec, SearchSpace

if not hasattr(creator, "FitnessMax"):
    creator.create("FitnessMax", base.Fitness, weights=(1.0,))
if not hasattr(creator, "Individual"):
    creator.create("Individual", list, fitness=creator.FitnessMax)


class LatencyModel(Protocol):
    def predict(self, arch: ArchSpec) -> float: ...

    def min_latency(self) -> tuple[float, ArchSpec]: ...


class AccuracyModel(Protocol):
    def predict(self, archs: list[ArchSpec]) -> Any: ...


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


# ---- operators -----------------------------------------------------------------
def mutate(ind: list[int], ranges: list[int], rng: random.Random, prob: float) -> tuple[list[int]]:
    for i, r in enumerate(ranges):
        if rng.random() < prob:
            ind[i] = rng.randrange(r)
    return (ind,)


def mate(a: list[int], b: list[int], rng: random.Random) -> tuple[list[int], list[int]]:
    for i in range(len(a)):
        if rng.random() < 0.5:
            a[i], b[i] = b[i], a[i]
    return a, b


def tournament(pop: list[Any], rng: random.Random, size: int = 3) -> Any:
    return max((pop[rng.randrange(len(pop))] for _ in range(size)), key=lambda ind: ind.fitness.values[0])


def repair(ind: list[int], space: SearchSpace, latency: LatencyModel, budget: float, rng: random.Random,
           fallback: ArchSpec) -> list[int]:
    """Lower random active genes one step at a time until the predicted latency fits."""
    lat = latency.predict(decode(space, ind))
    for _ in range(sum(gene_ranges(space))):  # each step lowers one gene index: bounded
        if lat <= budget:
            return ind
        genes = [i for i in active_genes(space, ind) if ind[i] > 0]
        rng.shuffle(genes)
        for i in genes:  # the first random active gene whose step down lowers the latency
            ind[i] -= 1
            trial = latency.predict(decode(space, ind))
            if trial < lat:
                lat = trial
                break
            ind[i] += 1
        else:
            break
    if lat > budget:
        ind[:] = encode(space, fallback)
    return ind


def check_feasible(latency: LatencyModel, budget_ms: float) -> tuple[float, ArchSpec]:
    if not (isinstance(budget_ms, (int, float)) and math.isfinite(budget_ms) and budget_ms > 0):
        raise UserError(f"the latency budget must be a positive number of ms, got {budget_ms}.")
    lo, arch = latency.min_latency()
    if budget_ms < lo:
        raise UserError(f"infeasible budget: {budget_ms:g} ms is below the smallest latency reachable on this "
                        f"device, {lo:.4f} ms (predicted for {arch.key()}); raise --latency-ms to at least that.")
    return lo, arch


def make_toolbox(space: SearchSpace, accuracy: AccuracyModel, latency: LatencyModel, budget_ms: float,
                 rng: random.Random, fallback: ArchSpec, mutation_prob: float) -> base.Toolbox:
    ranges = gene_ranges(space)
    tb = base.Toolbox()
    tb.register("individual", lambda: creator.Individual(encode(space, space.sample(rng))))
    tb.register("mutate", mutate, ranges=ranges, rng=rng, prob=mutation_prob)
    tb.register("mate", mate, rng=rng)
    tb.register("select_parent", tournament, rng=rng)
    tb.register("repair", repair, space=space, latency=latency, budget=budget_ms, rng=rng, fallback=fallback)
    tb.register("select", tools.selBest)

    def evaluate(pop: list[Any]) -> None:
        todo = [ind for ind in pop if not ind.fitness.valid]
        if todo:
            for ind, acc in zip(todo, accuracy.predict([decode(space, ind) for ind in todo]), strict=True):
                ind.fitness.values = (float(acc),)

    tb.register("evaluate", evaluate)
    return tb


# ---- the loop --------------------------------------------------------------------
def search(space: SearchSpace, accuracy: AccuracyModel, latency: LatencyModel, budget_ms: float,
           rng: random.Random, population: int = 64, generations: int = 40, offspring: int = 64,
           cx_prob: float = 0.7, mutation_prob: float = 0.1) -> SearchResult:
    t0 = time.time()
    _, fallback = check_feasible(latency, budget_ms)
    tb = make_toolbox(space, accuracy, latency, budget_ms, rng, fallback, mutation_prob)
    pop = [tb.repair(tb.individual()) for _ in range(population)]
    tb.evaluate(pop)
    archive = {tuple(ind): ind.fitness.values[0] for ind in pop}
    for _ in range(generations):
        children = []
        while len(children) < offspring:
            a, b = (creator.Individual(tb.select_parent(pop)), creator.Individual(tb.select_parent(pop)))
            if rng.random() < cx_prob:
                tb.mate(a, b)
            for child in (a, b):
                tb.mutate(child)
                del child.fitness.values
                children.append(tb.repair(child))
        tb.evaluate(children)
        archive.update({tuple(ind): ind.fitness.values[0] for ind in children})
        pop = tb.select(pop + children, population)
    return _result(space, latency, archive, time.time() - t0,
                   {"population": population, "generations": generations, "offspring": offspring,
                    "cx_prob": cx_prob, "mutation_prob": mutation_prob, "algorithm": "mu+lambda, repair"})


def random_search(space: SearchSpace, accuracy: AccuracyModel, latency: LatencyModel, budget_ms: float,
                  rng: random.Random, samples: int = 2624) -> SearchResult:
    """Baseline with the same evaluation count as the default search: sample, repair, keep the best."""
    t0 = time.time()
    _, fallback = check_feasible(latency, budget_ms)
    genomes = [repair(encode(space, space.sample(rng)), space, latency, budget_ms, rng, fallback)
               for _ in range(samples)]
    accs = accuracy.predict([decode(space, g) for g in genomes])
    archive = {tuple(g): float(a) for g, a in zip(genomes, accs, strict=True)}
    return _result(space, latency, archive, time.time() - t0, {"samples": samples, "algorithm": "random + repair"})


def _result(space: SearchSpace, latency: LatencyModel, archive: dict[tuple[int, ...], float], seconds: float,
            settings: dict[str, Any]) -> SearchResult:
    points = {}
    for genome, acc in archive.items():
        arch = decode(space, list(genome))
        points[arch.key()] = (latency.predict(arch), acc, arch)
    ranked = sorted(points.values(), key=lambda p: (p[0], -p[1]))
    front, best_acc = [], -math.inf
    for lat, acc, arch in ranked:  # sweep by latency: keep each strict accuracy improvement
        if acc > best_acc:
            front.append({"arch": arch.to_dict(), "latency_ms": lat, "top1": acc})
            best_acc = acc
    lat, acc, arch = max(points.values(), key=lambda p: (p[1], -p[0]))
    return SearchResult(arch, lat, acc, front, len(archive), seconds, settings)
