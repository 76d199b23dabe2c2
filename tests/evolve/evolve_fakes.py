"""Stand-ins for the search tests: an additive latency model, a size-driven accuracy model and a
synthetic LatencyTable (random entries, calibration with a weight term) for any space."""

from __future__ import annotations

import random
import zlib

import numpy as np

from profiler.lut import LatencyTable, all_entries
from supernet import SearchSpace


class FakeLatency:
    """Additive cost in k, e, depth and resolution, so smaller choices are cheaper (no gene_costs: the generic path)."""

    def __init__(self, space):
        self.space = space

    def predict(self, arch):
        r = (arch.resolution / max(self.space.resolutions)) ** 2
        return 0.01 + r * sum(0.002 * b.kernel_size + 0.003 * b.expand_ratio for s in arch.stages for b in s)

    def min_latency(self):
        return self.predict(self.space.smallest()), self.space.smallest()


class FakeAccuracy:
    """Bigger is better with diminishing returns, plus an arch-specific wiggle."""

    def __init__(self, space):
        self.space = space
        self.calls = 0

    def predict(self, archs):
        self.calls += 1
        out = []
        for a in archs:
            size = sum(b.kernel_size * b.expand_ratio for s in a.stages for b in s) * a.resolution
            wiggle = zlib.crc32(a.key().encode()) % 7  # crc32, not hash(): stable across processes
            out.append(1 - 1 / (1 + 0.001 * size) + 0.001 * wiggle)
        return np.array(out)


def synthetic_table(space: SearchSpace, seed: int = 0, calibrated: bool = True) -> LatencyTable:
    """Every entry the space needs, with noisy costs (a bigger choice is not always dearer)."""
    rng = random.Random(seed)
    entries = {}
    for key, spec in all_entries(space).items():
        if spec["kind"] == "overhead":
            entries[key] = {"p50_ms": 0.01 + 0.001 * rng.random()}
            continue
        size = spec.get("kernel_size", 3) * spec.get("expand_ratio", 3) * spec["resolution"] ** 2 / 1e4
        entries[key] = {"p50_ms": 0.02 + 0.01 * size * rng.uniform(0.6, 1.4), "weight_mb": 0.01 * rng.random()}
    calibration = {"a": 1.1, "b": 0.003, "c": 0.4, "fidelity": {}} if calibrated else None
    return LatencyTable(space, {"device": f"synthetic-{seed}", "space": space.to_dict()}, entries, calibration)
