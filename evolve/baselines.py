"""Baselines the search is benchmarked against, with the same repair and the same evaluation count.

- random search: sample, repair, keep the best;
- aging (regularized) evolution, Real et al. 2019: a queue of `population` archs; each cycle
  samples `sample` of them, mutates one active gene of the best, repairs and evaluates the child,
  appends it and drops the oldest.
- OFA's EvolutionFinder (Cai et al. 2020): population 100; each generation keeps the best quarter as
  parents and makes 100 children, half by mutating a random parent (each gene redrawn with
  probability 0.1, the resolution with 0.5), half by crossing two; children over the budget are
  redrawn (OFA's "native" constraint, bounded here) or repaired ("repair");
- NSGA-II without repair: hwofa's front search limited to the budget, infeasible children penalised.
All count evaluations as distinct archs given to the predictor and stop after `evaluations`
of them (or after 20x as many draws, rejected draws included, so they end however small the space).
"""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from deap import base, creator

from evolve._fast import AccuracyCache, AccuracyModel, GenomeLayout, LatencyModel
from evolve.ea import SearchResult, _result
from evolve.front import select_front
from evolve.genome import gene_ranges
from evolve.operators import breed, check_feasible, crowded_tournament, make_toolbox
from hwofa.common import UserError


def random_search(space: Any, accuracy: AccuracyModel | AccuracyCache, latency: LatencyModel, budget_ms: float,
                  rng: random.Random, samples: int = 2624) -> SearchResult:
    """Sample, repair, keep the best, until `samples` distinct archs have been evaluated."""
    t0 = time.perf_counter()
    _, fallback = check_feasible(latency, budget_ms)
    tb = make_toolbox(space, accuracy, latency, budget_ms, rng, fallback, 0.0)
    draws = 0
    while len(tb.archive) < samples and draws < 20 * samples:
        batch = [tb.individual() for _ in range(min(1024, samples - len(tb.archive)))]
        draws += len(batch)
        for ind in batch:
            ind.latency_ms = tb.repair(ind)
        tb.evaluate(batch)
    return _result(tb.layout, tb.archive, time.perf_counter() - t0,
                   {"samples": samples, "algorithm": "random + repair"})


def mutate_one(ind: list[int], layout: GenomeLayout, rng: random.Random) -> tuple[list[int]]:
    """Real et al.'s mutation: one active gene takes another value."""
    genes = [i for i in layout.active(ind) if layout.ranges[i] > 1]
    if genes:
        i = rng.choice(genes)
        ind[i] = (ind[i] + 1 + rng.randrange(layout.ranges[i] - 1)) % layout.ranges[i]
    return (ind,)


def aging_evolution(space: Any, accuracy: AccuracyModel | AccuracyCache, latency: LatencyModel, budget_ms: float,
                    rng: random.Random, evaluations: int = 2624, population: int = 100,
                    sample: int = 25) -> SearchResult:
    """Regularized evolution (Real et al. 2019) with the repair, for `evaluations` distinct archs."""
    t0 = time.perf_counter()
    _, fallback = check_feasible(latency, budget_ms)
    tb = make_toolbox(space, accuracy, latency, budget_ms, rng, fallback, 0.0)
    tb.register("mutate", mutate_one, layout=tb.layout, rng=rng)
    queue: collections.deque[Any] = collections.deque()
    for _ in range(population):
        ind = tb.individual()
        ind.latency_ms = tb.repair(ind)
        queue.append(ind)
    tb.evaluate(list(queue))  # one batch for the random start, then one child per cycle
    for _ in range(20 * evaluations):
        if len(tb.archive) >= evaluations:
            break
        parent = max(rng.sample(queue, min(sample, len(queue))), key=lambda i: i.fitness.values[0])
        child = tb.clone(parent)
        tb.mutate(child)
        child.latency_ms = tb.repair(child)
        tb.evaluate([child])
        queue.append(child)
        queue.popleft()
    return _result(tb.layout, tb.archive, time.perf_counter() - t0,
                   {"evaluations": evaluations, "population": population, "sample": sample,
                    "algorithm": "aging evolution (Real et al. 2019), repair"})


def ofa_mutate(ind: list[int], ranges: list[int], rng: random.Random, arch_prob: float,
               resolution_prob: float) -> tuple[list[int]]:
    """OFA's mutation: the resolution is redrawn with `resolution_prob`, every other gene (each stage's
    depth, each block slot's kernel and expand ratio, active or not) with `arch_prob`; a redraw may
    draw the value it had."""
    if rng.random() < resolution_prob:
        ind[0] = int(rng.random() * ranges[0])
    for i in range(1, len(ind)):
        if rng.random() < arch_prob:
            ind[i] = int(rng.random() * ranges[i])
    return (ind,)


def ofa_crossover(a: list[int], b: list[int], rng: random.Random) -> list[int]:
    """OFA's crossover: one child, each gene from either parent with probability 1/2."""
    bits = rng.getrandbits(len(a))
    return type(a)(b[i] if bits >> i & 1 else a[i] for i in range(len(a)))


def evaluate_upto(tb: base.Toolbox, inds: list[Any], evaluations: int) -> list[Any]:
    """Evaluate `inds`, cut where the next one would take the archive past `evaluations` distinct archs."""
    room, new, out = evaluations - len(tb.archive), set(), []
    for ind in inds:
        ind.key = tb.layout.key(ind)
        if ind.key not in tb.archive and ind.key not in new:
            if len(new) >= room:
                break
            new.add(ind.key)
        out.append(ind)
    tb.evaluate(out)
    return out


def _fitting(tb: base.Toolbox, draw: Callable[[], Any], native: bool, max_tries: int,
             count: dict[str, int]) -> Any | None:
    """One child under the budget. repair: one draw, repaired. native (OFA): draws until one fits, at most
    `max_tries` and never past `count["limit"]` draws in all; None where none fits."""
    for _ in range(max_tries if native else 1):
        if count["draws"] >= count["limit"]:
            break
        ind = draw()
        count["draws"] += 1
        if not native:
            ind.latency_ms = tb.repair(ind)
            return ind
        lat = tb.latency.of(ind)
        if lat <= tb.budget:
            ind.latency_ms = lat
            return ind
        count["rejected"] += 1
    count["given_up"] += 1
    return None


def evolution_finder(space: Any, accuracy: AccuracyModel | AccuracyCache, latency: LatencyModel, budget_ms: float,
                     rng: random.Random, evaluations: int = 2624, constraint: str = "native",
                     population: int = 100, parent_ratio: float = 0.25, mutation_ratio: float = 0.5,
                     arch_mutate_prob: float = 0.1, resolution_mutate_prob: float = 0.5,
                     max_tries: int = 1000) -> SearchResult:
    """OFA's EvolutionFinder (Cai et al. 2020) for `evaluations` distinct archs. `constraint`: "native"
    redraws a child until it fits (OFA), at most `max_tries` draws a child; "repair" repairs it instead.
    Raises UserError where native sampling finds no arch under the budget for the first population."""
    if constraint not in ("native", "repair"):
        raise ValueError(f"constraint must be 'native' or 'repair', got {constraint!r}")
    t0 = time.perf_counter()
    lo, fallback = check_feasible(latency, budget_ms)
    tb = make_toolbox(space, accuracy, latency, budget_ms, rng, fallback, 0.0)
    tb.register("mutate", ofa_mutate, ranges=tb.layout.ranges, rng=rng, arch_prob=arch_mutate_prob,
                resolution_prob=resolution_mutate_prob)
    tb.register("mate", ofa_crossover, rng=rng)
    count = {"draws": 0, "rejected": 0, "given_up": 0, "limit": 20 * evaluations}
    tb.register("fitting", _fitting, tb, native=constraint == "native", max_tries=max_tries, count=count)
    n_parents, n_mutants = max(1, round(parent_ratio * population)), round(mutation_ratio * population)
    pop = [ind for ind in (tb.fitting(tb.individual) for _ in range(population)) if ind is not None]
    if not pop:
        raise UserError(f"OFA's EvolutionFinder (native constraint) drew {count['draws']} random archs and none "
                        f"fits {budget_ms:g} ms (the smallest reachable is {lo:.4f} ms); use constraint='repair'.")
    pop = evaluate_upto(tb, pop, evaluations)
    generations = 0
    while len(tb.archive) < evaluations and count["draws"] < count["limit"]:
        parents = sorted(pop, key=lambda ind: ind.fitness.values[0], reverse=True)[:n_parents]
        kids = []
        for j in range(population):  # OFA: the first `n_mutants` mutate one parent, the rest cross two
            a = parents[int(rng.random() * len(parents))]
            if j < n_mutants:
                kids.append(tb.fitting(partial(_mutant, tb, a)))
            else:
                kids.append(tb.fitting(partial(tb.mate, a, parents[int(rng.random() * len(parents))])))
        pop = parents + evaluate_upto(tb, [k for k in kids if k is not None], evaluations)
        generations += 1
    return _result(tb.layout, tb.archive, time.perf_counter() - t0,
                   {"evaluations": evaluations, "population": population, "parent_ratio": parent_ratio,
                    "mutation_ratio": mutation_ratio, "arch_mutate_prob": arch_mutate_prob,
                    "resolution_mutate_prob": resolution_mutate_prob, "constraint": constraint,
                    "max_tries": max_tries, "generations": generations, "draws": count["draws"],
                    "rejected": count["rejected"], "given_up": count["given_up"],
                    "algorithm": f"OFA EvolutionFinder, {constraint}"})


def _mutant(tb: base.Toolbox, parent: list[int]) -> list[int]:
    return tb.mutate(tb.clone(parent))[0]


def _penalised(tb: base.Toolbox, inds: list[Any], evaluations: int) -> list[Any]:
    """The feasible ones evaluated (up to `evaluations`), the others never predicted: their fitness is the
    penalty (-1 - excess / budget, latency), so every feasible arch dominates them and the nearer the better."""
    out = [ind for ind in inds if ind.latency_ms > tb.budget]
    for ind in out:
        ind.key = tb.layout.key(ind)
        ind.fitness.values = (-1.0 - (ind.latency_ms - tb.budget) / tb.budget, ind.latency_ms)
    return evaluate_upto(tb, [ind for ind in inds if ind.latency_ms <= tb.budget], evaluations) + out


def nsga2_no_repair(space: Any, accuracy: AccuracyModel | AccuracyCache, latency: LatencyModel, budget_ms: float,
                    rng: random.Random, evaluations: int = 2624, population: int = 100, cx_prob: float = 0.9,
                    mutation_prob: float | None = None) -> SearchResult:
    """hwofa's NSGA-II front search (evolve/front.py: seeds, crowded tournaments, crossover, mutation
    1 / genome length, `select_front`) limited to the budget, with the repair switched off: infeasible
    children are penalised, not repaired. The pick is the most accurate feasible arch evaluated."""
    t0 = time.perf_counter()
    _, fallback = check_feasible(latency, budget_ms)
    mutation_prob = 1 / len(gene_ranges(space)) if mutation_prob is None else mutation_prob
    tb = make_toolbox(space, accuracy, latency, budget_ms, rng, fallback, mutation_prob,
                      individual=creator.FrontIndividual, objectives=2)
    tb.register("repair", tb.latency.of)  # switched off: the latency only
    tb.register("select_parent", crowded_tournament, rng=rng)
    tb.register("select", select_front)
    start = [tb.seed(fallback), tb.seed(space.largest())] + [tb.individual() for _ in range(population - 2)]
    for ind in start:
        ind.latency_ms = tb.repair(ind)
    pop, draws = tb.select(_penalised(tb, start, evaluations), population), len(start)
    while len(tb.archive) < evaluations and draws < 20 * evaluations:
        children = breed(tb, pop, population, cx_prob, rng)
        draws += len(children)
        pop = tb.select(pop + _penalised(tb, children, evaluations), population)
    return _result(tb.layout, tb.archive, time.perf_counter() - t0,
                   {"evaluations": evaluations, "population": population, "cx_prob": cx_prob,
                    "mutation_prob": mutation_prob, "draws": draws,
                    "algorithm": "NSGA-II (selNSGA2), no repair: infeasible children penalised"})
