"""Bursty outside load, for testing the timing routine the way shared hosts and laptops behave.

Each worker process alternates busy spells (a fraction of a second to ~1.5 s of single-thread
work that also thrashes a few MiB of memory, like a real neighbour) with idle spells of random
length. Seeded, so a benchmark can be repeated.

    with Disturbance(workers=2, seed=0):
        ...                      # measure under load
    python -m profiler.disturb --workers 2 --seconds 60    # load another process's measurement
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class BurstPattern:
    busy_s: tuple[float, float] = (0.2, 1.5)
    idle_s: tuple[float, float] = (0.2, 1.5)
    mem_mib: int = 8


def _worker(seed: int, pattern: BurstPattern, parent: int) -> None:
    """Busy/idle spells until the parent that started it is gone (killed without cleaning up)."""
    rng = random.Random(seed)
    buf = np.ones(pattern.mem_mib * (1 << 20) // 8)
    while os.getppid() == parent:
        end = time.monotonic() + rng.uniform(*pattern.busy_s)
        while time.monotonic() < end:
            buf *= 1.0000001  # streams through memory and keeps the core busy
        time.sleep(rng.uniform(*pattern.idle_s))


class Disturbance:
    """Context manager: `workers` processes of bursty load while the block runs (separate
    interpreters started with subprocess, so it is safe inside any program)."""

    def __init__(self, workers: int = 2, seed: int = 0, pattern: BurstPattern | None = None) -> None:
        self.workers, self.seed, self.pattern = workers, seed, pattern or BurstPattern()
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> Disturbance:
        p = self.pattern
        for i in range(self.workers):
            cmd = [sys.executable, str(Path(__file__)), "--worker", str(os.getpid()),
                   "--seed", str(self.seed * 1000 + i), "--busy", str(p.busy_s[0]), str(p.busy_s[1]),
                   "--idle", str(p.idle_s[0]), str(p.idle_s[1])]
            self._procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self._procs:
            proc.kill()
        for proc in self._procs:
            proc.wait(timeout=10)
        self._procs.clear()


def main() -> None:
    ap = argparse.ArgumentParser(description="bursty CPU load for timing tests")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--busy", type=float, nargs=2, default=BurstPattern.busy_s, metavar=("MIN_S", "MAX_S"))
    ap.add_argument("--idle", type=float, nargs=2, default=BurstPattern.idle_s, metavar=("MIN_S", "MAX_S"))
    ap.add_argument("--worker", type=int, metavar="PARENT_PID", help=argparse.SUPPRESS)
    args = ap.parse_args()
    pattern = BurstPattern(tuple(args.busy), tuple(args.idle))
    if args.worker:
        _worker(args.seed, pattern, args.worker)
        return
    with Disturbance(args.workers, args.seed, pattern):
        time.sleep(args.seconds)


if __name__ == "__main__":
    main()
