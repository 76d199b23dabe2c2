"""DEAP classes and the named operators both search loops register on their toolboxes.

Every child is repaired into the latency budget before it is evaluated: `repair` lowers one
random active gene at a time (each step strictly lowers the predicted latency, so it ends),
falling back to the exact minimum-latency arch. All randomness comes from a passed-in
`random.Random`; the hot operators draw an index as `int(rng.random() * n)` (a third of `randrange`'s cost).
"""

from __future__ import annotations

import math
import random
from typing import Any

from deap import base, creator

from evolve._fast import (
    AccuracyCache,
    AccuracyModel,
    GenomeLatency,
    GenomeLayout,
    Key,
    LatencyModel,
    genome_latency,
)
from evolve.genome import encode
from hwofa.common import UserError
from supernet import ArchSpec, SearchSpace

# DEAP classes, created once: single-objective (top-1) and front (top-1 up, latency down).
if not hasattr(creator, "FitnessMax"):
    creator.create("FitnessMax", base.Fitness, weights=(1.0,))
if not hasattr(creator, "Individual"):
    creator.create("Individual", list, fitness=creator.FitnessMax)
if not hasattr(creator, "FitnessFront"):
    creator.create("FitnessFront", base.Fitness, weights=(1.0, -1.0))
if not hasattr(creator, "FrontIndividual"):
    creator.create("FrontIndividual", list, fitness=creator.FitnessFront)


def clone(ind: list[int]) -> list[int]:
    """A fresh individual with the same genes (no fitness): cheaper than the toolbox's deepcopy."""
    return type(ind)(ind)


def mutate(ind: list[int], ranges: list[int], rng: random.Random, prob: float) -> tuple[list[int]]:
    """Redraw each gene with probability `prob`; the gap to the next redrawn gene is drawn
    (geometric), so a genome costs a few draws rather than one per gene."""
    if prob <= 0:
        return (ind,)
    log_keep = math.log1p(-prob) if prob < 1 else -math.inf
    i = -1
    while i < len(ind):  # i grows by at least 1 a step
        i += 1 + (0 if prob >= 1 else int(math.log(1.0 - rng.random()) / log_keep))
        if i < len(ind):
            ind[i] = int(rng.random() * ranges[i])
    return (ind,)


def mate(a: list[int], b: list[int], rng: random.Random) -> tuple[list[int], list[int]]:
    """Uniform crossover: each gene swaps with probability 1/2 (one draw of random bits)."""
    bits = rng.getrandbits(len(a))
    for i in range(len(a)):
        if bits >> i & 1:
            a[i], b[i] = b[i], a[i]
    return a, b


def tournament(pop: list[Any], rng: random.Random, size: int = 3) -> Any:
    n = len(pop)
    return max((pop[int(rng.random() * n)] for _ in range(size)), key=lambda ind: ind.fitness.values[0])


def crowded_tournament(pop: list[Any], rng: random.Random) -> Any:
    """NSGA-II's binary tournament: the dominating one, else the less crowded (needs `selNSGA2` first)."""
    n = len(pop)
    a, b = pop[int(rng.random() * n)], pop[int(rng.random() * n)]
    if a.fitness.dominates(b.fitness):
        return a
    if b.fitness.dominates(a.fitness):
        return b
    if a.fitness.crowding_dist != b.fitness.crowding_dist:
        return a if a.fitness.crowding_dist > b.fitness.crowding_dist else b
    return a if rng.random() < 0.5 else b


def repair(ind: list[int], latency: GenomeLatency, budget: float, rng: random.Random,
           fallback: list[int]) -> float:
    """Lower random active genes one step at a time until the predicted latency fits; return it.
    Falls back to the minimum-latency genome where no step helps any more."""
    layout = latency.layout
    lat = latency.of(ind)
    moved = False
    for _ in range(layout.max_steps + 1):  # each step lowers one gene index: bounded
        if lat <= budget:
            if not moved:
                return lat
            lat, moved = latency.of(ind), False  # exact sum, free of the updates' rounding
            if lat <= budget:
                return lat
        genes = [i for i in layout.active(ind) if ind[i] > 0]
        while genes:  # the first random active gene whose step down lowers the latency
            i = genes.pop(int(rng.random() * len(genes)))
            trial = latency.lowered(ind, i, lat)
            if trial < lat:
                ind[i] -= 1
                lat, moved = trial, True
                break
        else:
            break
    ind[:] = fallback
    return latency.of(ind)


def infeasible(budget_ms: float, lowest_ms: float, arch_key: str) -> UserError:
    return UserError(f"infeasible budget: {budget_ms:g} ms is below the smallest latency reachable on this "
                     f"device, {lowest_ms:.4f} ms (predicted for {arch_key}); raise --latency-ms to at least that.")


def check_budget(budget_ms: Any) -> None:
    if not (isinstance(budget_ms, (int, float)) and math.isfinite(budget_ms) and budget_ms > 0):
        raise UserError(f"the latency budget must be a positive number of ms, got {budget_ms}.")


def check_feasible(latency: LatencyModel, budget_ms: float) -> tuple[float, ArchSpec]:
    check_budget(budget_ms)
    lo, arch = latency.min_latency()
    if budget_ms < lo:
        raise infeasible(budget_ms, lo, arch.key())
    return lo, arch


def breed(tb: base.Toolbox, pop: list[Any], n: int, cx_prob: float, rng: random.Random) -> list[Any]:
    """`n` children (one more where `n` is odd): parents from `tb.select_parent`, then mate, mutate, repair."""
    children: list[Any] = []
    while len(children) < n:
        a, b = tb.clone(tb.select_parent(pop)), tb.clone(tb.select_parent(pop))
        if rng.random() < cx_prob:
            tb.mate(a, b)
        for child in (a, b):
            tb.mutate(child)
            del child.fitness.values
            child.latency_ms = tb.repair(child)
            child.key = tb.layout.key(child)
            children.append(child)
    return children


def score(inds: list[Any], layout: GenomeLayout, accuracy: AccuracyCache) -> None:
    """Set `key` and predicted `top1` where missing (one predictor batch). Breed and adopt set keys; they
    are never stale, as children are fresh clones."""
    for ind in inds:
        if not hasattr(ind, "key"):
            ind.key = layout.key(ind)
    todo = [ind for ind in inds if not hasattr(ind, "top1")]
    if todo:
        for ind, top1 in zip(todo, accuracy([ind.key for ind in todo], todo), strict=True):
            ind.top1 = top1


def evaluate(pop: list[Any], layout: GenomeLayout, accuracy: AccuracyCache,
             archive: dict[Key, tuple[float, float]], objectives: int) -> None:
    """Fitness of the individuals that lack one: (top-1,) or (top-1, latency); every arch seen goes
    into `archive` as key -> (latency, top-1)."""
    todo = [ind for ind in pop if not ind.fitness.valid]
    score(todo, layout, accuracy)
    for ind in todo:
        ind.fitness.values = (ind.top1, ind.latency_ms)[:objectives]
        archive[ind.key] = (ind.latency_ms, ind.top1)


def unique(pop: list[Any]) -> list[Any]:
    """One individual per arch (the first); the selection then keeps the population diverse."""
    seen: dict[Key, Any] = {}
    for ind in pop:
        seen.setdefault(ind.key, ind)
    return list(seen.values())


def make_toolbox(space: SearchSpace, accuracy: AccuracyModel | AccuracyCache, latency: LatencyModel,
                 budget_ms: float, rng: random.Random, fallback: ArchSpec, mutation_prob: float,
                 individual: type = creator.Individual, objectives: int = 1) -> base.Toolbox:
    """The operators every loop shares; the loop adds its `select_parent` and `select`.
    `tb.archive` collects key -> (latency, top-1) of every arch evaluated, `tb.layout` reads keys,
    `tb.latency` gives genomes' latencies and `tb.budget` is the budget the repair enforces."""
    layout = GenomeLayout(space)
    cache = accuracy if isinstance(accuracy, AccuracyCache) else AccuracyCache(layout, accuracy)
    tb = base.Toolbox()
    tb.layout, tb.archive, tb.latency, tb.budget = layout, {}, genome_latency(layout, latency), budget_ms
    tb.register("individual", lambda: individual(encode(space, space.sample(rng))))
    tb.register("seed", lambda arch: individual(encode(space, arch)))
    tb.register("clone", clone)
    tb.register("mutate", mutate, ranges=layout.ranges, rng=rng, prob=mutation_prob)
    tb.register("mate", mate, rng=rng)
    tb.register("repair", repair, latency=tb.latency, budget=budget_ms, rng=rng, fallback=encode(space, fallback))
    tb.register("evaluate", evaluate, layout=layout, accuracy=cache, archive=tb.archive, objectives=objectives)
    return tb


def initial(tb: base.Toolbox, n: int, seeds: tuple[ArchSpec, ...] = ()) -> list[Any]:
    """`seeds` then random individuals, `n` in all, repaired and evaluated."""
    pop = [tb.seed(arch) for arch in seeds] + [tb.individual() for _ in range(n - len(seeds))]
    for ind in pop:
        ind.latency_ms = tb.repair(ind)
    tb.evaluate(pop)
    return pop
