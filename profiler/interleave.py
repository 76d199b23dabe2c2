"""Interleaved measurement of many items: the scheduler of the one timing routine.

A pool of up to `pool` loaded items is timed round by round in a fresh random order each
pass, a canary round between item rounds (each round's canary figure is the mean of the one
before and the one after it). After each pass every item is judged
(`timing.estimate`): done items leave the pool (and are reported through `on_done`, so a
caller can flush them) and the next items are loaded in. Rounds marked disturbed are
replaced; when a pass saw disturbance and ran quickly (few items left), it waits a moment so
the next rounds land outside the burst. When the pool is empty, every result is judged again
against the canary's final reference, and items whose agreeing rounds turn out disturbed are
measured again once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from tqdm import tqdm

from profiler.profiles import TimingProtocol
from profiler.timing import Round, Timing, disturbed, estimate, time_round, warm_up

log = logging.getLogger(__name__)
PASS_MIN_S = 0.3  # a pass that saw disturbance lasts at least this long (bursts are ~0.2-1.5 s)

Loader = Callable[[], Callable[[], Any]]


class Canary:
    """A fixed model on the same runtime, timed before every round. Its reference is the 25th
    percentile of its round medians: above the occasional lucky round (hosts have short fast
    spells as well as slow bursts), below the bursts as long as the machine is quiet a quarter
    of the time. `medians` may be seeded from an interrupted build so a resumed build keeps one scale."""

    def __init__(self, run: Callable[[], Any], protocol: TimingProtocol, medians: list[float] | None = None) -> None:
        # shorter rounds than the items': the canary only has to gauge the load beside every item round
        self.run, self.protocol = run, replace(protocol, round_s=max(0.005, protocol.round_s / 2))
        self.medians: list[float] = list(medians or [])
        warm_up(run, protocol)
        for _ in range(4):
            self.round_ms()

    @property
    def ref_ms(self) -> float:
        """Rounds whose canary ran more than `canary_tol` above this are disturbed."""
        return float(np.percentile(self.medians, 25))

    @property
    def floor_ms(self) -> float:
        """The canary's undisturbed level: the host's short quiet spells."""
        return float(np.percentile(self.medians, 5))

    def round_ms(self) -> float:
        r = time_round(self.run, self.protocol)
        self.medians.append(r.median_ms)
        return r.median_ms


def measure_many(loaders: dict[str, Loader], protocol: TimingProtocol, canary: Canary | Callable[[], Any] | None = None,
                 rng: random.Random | None = None, pool: int = 32,
                 on_done: Callable[[str, Timing, list[Round]], None] | None = None,
                 prior: dict[str, list[Round]] | None = None, progress: bool = True, desc: str = "measure",
                 deadline: float | None = None) -> dict[str, Timing]:
    """Time every item of `loaders` (key -> a function that loads it and returns a no-arg runner).

    `prior` seeds items with rounds measured earlier (re-measurement adds to them); `deadline`
    (a time.monotonic() value) ends rounds early, with whatever estimate the rounds allow.
    """
    rng = rng or random.Random(0)
    if canary is not None and not isinstance(canary, Canary):
        canary = Canary(canary, protocol)
    rounds: dict[str, list[Round]] = {k: list((prior or {}).get(k, [])) for k in loaders}
    results: dict[str, Timing] = {}
    bar = tqdm(total=len(loaders), desc=desc, disable=not progress, unit="item")
    _run_pool(list(loaders), loaders, rounds, results, protocol, canary, rng, pool, on_done, bar, deadline)
    ref = canary.ref_ms if canary else None
    again = [k for k in loaders if k in results and results[k].converged
             and estimate(rounds[k], protocol, ref) is None]
    if again and not _past(deadline):
        log.info("%d item(s) had agreeing rounds that the canary's final reference marks as disturbed; "
                 "measuring them again", len(again))
        bar.total += len(again)
        _run_pool(again, loaders, rounds, results, protocol, canary, rng, pool, on_done, bar, deadline)
    bar.close()
    return results


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


def _run_pool(todo: list[str], loaders: dict[str, Loader], rounds: dict[str, list[Round]],
              results: dict[str, Timing], protocol: TimingProtocol, canary: Canary | None, rng: random.Random,
              pool: int, on_done: Callable[[str, Timing, list[Round]], None] | None, bar: Any,
              deadline: float | None) -> None:
    queue, active = list(todo), {}
    budget = {k: len(rounds[k]) + protocol.max_rounds for k in todo}  # rounds this pass may add, at most
    while queue or active:
        while queue and len(active) < pool:
            key = queue.pop(0)
            active[key] = loaders[key]()
            warm_up(active[key], protocol)
        t_pass = time.monotonic()
        order = list(active)
        rng.shuffle(order)
        saw_disturbance = _one_pass(order, active, rounds, protocol, canary)
        ref = canary.ref_ms if canary else None
        for key in order:
            final = len(rounds[key]) >= budget[key] or _past(deadline)
            t = estimate(rounds[key], protocol, ref, final=final)
            if t is not None:
                results[key] = t
                del active[key]
                bar.update(1)
                if on_done:
                    on_done(key, t, rounds[key])
        rest = PASS_MIN_S - (time.monotonic() - t_pass)
        if saw_disturbance and active and rest > 0:
            time.sleep(rest)


def _one_pass(order: list[str], active: dict[str, Callable[[], Any]], rounds: dict[str, list[Round]],
              protocol: TimingProtocol, canary: Canary | None) -> bool:
    """One round of each item in `order`, a canary round between them; True if load was seen."""
    saw, last_key = False, None
    for key in [*order, None]:
        c = canary.round_ms() if canary else None
        if last_key is not None and c is not None:  # the canary around a round: before and after it
            last = rounds[last_key][-1]
            rounds[last_key][-1] = replace(last, canary_ms=(last.canary_ms + c) / 2)
        if key is None:
            break
        r = time_round(active[key], protocol)
        rounds[key].append(Round(r.median_ms, r.p90_ms, r.cv, r.n, c))
        last_key = key
        saw = saw or disturbed(rounds[key][-1], canary.ref_ms if canary else None, protocol)
    return saw
