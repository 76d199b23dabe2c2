import random
import zlib

import numpy as np
import pytest

from evolve import decode, encode, features, gene_ranges, random_search, search
from evolve.ea import mate, mutate, repair
from hwofa.common import UserError
from supernet import ArchSpec, SearchSpace
from tests.conftest import TINY_SPACE

SPACES = [SearchSpace(), SearchSpace.from_dict(TINY_SPACE)]


class FakeLatency:
    """Additive cost in k, e, depth and resolution, so smaller choices are cheaper."""

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

    def predict(self, archs):
        out = []
        for a in archs:
            size = sum(b.kernel_size * b.expand_ratio for s in a.stages for b in s) * a.resolution
            wiggle = zlib.crc32(a.key().encode()) % 7  # crc32, not hash(): stable across processes
            out.append(1 - 1 / (1 + 0.001 * size) + 0.001 * wiggle)
        return np.array(out)


@pytest.mark.parametrize("space", SPACES, ids=["full", "tiny"])
def test_encode_decode_round_trip(space):
    rng = random.Random(0)
    for _ in range(50):
        arch = space.sample(rng)
        genome = encode(space, arch)
        assert len(genome) == len(gene_ranges(space))
        assert decode(space, genome) == arch


@pytest.mark.parametrize("space", SPACES, ids=["full", "tiny"])
def test_operators_stay_in_space(space):
    rng = random.Random(1)
    ranges = gene_ranges(space)
    a, b = encode(space, space.sample(rng)), encode(space, space.sample(rng))
    for _ in range(200):
        mutate(a, ranges, rng, 0.3)
        mate(a, b, rng)
        for g in (a, b):
            assert all(0 <= v < r for v, r in zip(g, ranges, strict=True))
            space.validate(decode(space, g))


def test_features_one_hot_shape():
    space = SearchSpace()
    x = features(space, [space.largest(), space.smallest()])
    assert x.shape == (2, 3 + 5 * 4 * 6)
    assert x[0].sum() == 1 + 20 * 2 and x[1].sum() == 1 + 10 * 2


def test_repair_terminates_within_budget():
    space = SearchSpace()
    lat = FakeLatency(space)
    rng = random.Random(2)
    lo = lat.min_latency()[0]
    for budget in (lo, lo * 1.5, lo * 4):
        for _ in range(30):
            g = repair(encode(space, space.sample(rng)), space, lat, budget, rng, space.smallest())
            assert lat.predict(decode(space, g)) <= budget + 1e-12


def test_infeasible_budget_names_smallest_latency():
    space = SearchSpace()
    lat = FakeLatency(space)
    lo = lat.min_latency()[0]
    with pytest.raises(UserError, match=f"{lo:.4f} ms"):
        search(space, FakeAccuracy(space), lat, lo * 0.5, random.Random(0))
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(UserError, match="positive"):
            search(space, FakeAccuracy(space), lat, bad, random.Random(0))


def test_search_is_deterministic_and_beats_random():
    space = SearchSpace()
    lat, acc = FakeLatency(space), FakeAccuracy(space)
    budget = lat.min_latency()[0] * 3
    a = search(space, acc, lat, budget, random.Random(5), population=32, generations=15, offspring=32)
    b = search(space, acc, lat, budget, random.Random(5), population=32, generations=15, offspring=32)
    assert a.arch == b.arch and a.pareto == b.pareto
    assert a.predicted_latency_ms <= budget
    base = random_search(space, acc, lat, budget, random.Random(5), samples=a.evaluations)
    assert a.predicted_top1 >= base.predicted_top1
    lats = [p["latency_ms"] for p in a.pareto]
    tops = [p["top1"] for p in a.pareto]
    assert lats == sorted(lats) and tops == sorted(tops) and max(lats) <= budget
    assert isinstance(ArchSpec.from_dict(a.to_dict()["arch"]), ArchSpec)
