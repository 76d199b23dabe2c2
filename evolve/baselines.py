"""Baselines the search is benchmarked against, with the same repair and the same evaluation count.

- random search: sample, repair, keep the best;
- aging (regularized) evolution, Real et al. 2019: a queue of `population` archs; each cycle
  samples `sample` of them, mutates one active gene of the best, repairs and evaluates the child,
  appends it and drops the oldest.
Both count evaluations as distinct archs given to the predictor and stop after `evaluations`
of them (or after 20x as many draws, so they end however small the space).
"""

from __future__ import annotations

import collections
import random
import time
from typing import Any

from evolve._fast import AccuracyCache, AccuracyModel, GenomeLayout, LatencyModel
from evolve.ea import SearchResult, _result
from evolve.operators import check_feasible, make_toolbox


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
