"""The one timing routine every backend goes through (DESIGN §5)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from profiler.profiles import TimingProtocol


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p90_ms: float
    n: int
    cv: float

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}


def measure(run: Callable[[], Any], protocol: TimingProtocol | None = None) -> Timing:
    """Warm up, then time single calls of `run` until both run and time floors are met."""
    protocol = protocol or TimingProtocol()
    clock = time.perf_counter
    start, count = clock(), 0
    while count < protocol.warmup_runs or clock() - start < protocol.warmup_s:
        run()
        count += 1
    samples: list[float] = []
    start = clock()
    while len(samples) < protocol.min_runs or clock() - start < protocol.min_s:
        t0 = clock()
        run()
        samples.append(clock() - t0)
    return summarize(samples)


def summarize(samples_s: list[float]) -> Timing:
    """p50, p90 and a robust coefficient of variation: (IQR / 1.349) / median, which equals
    std / mean for normal data but is not blown up by the rare multi-millisecond hiccup of a
    shared CPU that would dominate the plain std of sub-millisecond runs."""
    ms = np.asarray(samples_s) * 1e3
    p25, p50, p75, p90 = np.percentile(ms, [25, 50, 75, 90])
    return Timing(p50_ms=float(p50), p90_ms=float(p90), n=len(ms),
                  cv=float((p75 - p25) / 1.349 / p50) if p50 > 0 else 0.0)


def measure_stable(run: Callable[[], Any], protocol: TimingProtocol | None = None) -> Timing:
    """`measure`, repeated up to `protocol.remeasure` times while the CV is above `max_cv`;
    keeps the repeat with the lowest CV."""
    protocol = protocol or TimingProtocol()
    best = measure(run, protocol)
    for _ in range(protocol.remeasure):
        if best.cv <= protocol.max_cv:
            break
        again = measure(run, protocol)
        best = again if again.cv < best.cv else best
    return best
