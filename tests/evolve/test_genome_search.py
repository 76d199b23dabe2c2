import random

import pytest

from evolve import aging_evolution, decode, encode, features, gene_ranges, random_search, search
from evolve._fast import GenomeLayout, genome_latency
from evolve.operators import mate, mutate, repair
from hwofa.common import UserError
from supernet import ArchSpec, SearchSpace
from tests.conftest import TINY_SPACE
from tests.evolve.evolve_fakes import FakeAccuracy, FakeLatency, synthetic_table

SPACES = [SearchSpace(), SearchSpace.from_dict(TINY_SPACE)]


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


@pytest.mark.parametrize("make", [FakeLatency, synthetic_table], ids=["generic", "table"])
def test_repair_terminates_within_budget(make):
    space = SearchSpace()
    lat = make(space)
    fast = genome_latency(GenomeLayout(space), lat)
    rng = random.Random(2)
    lo, fallback = lat.min_latency()
    for budget in (lo, lo * 1.5, lo * 4):
        for _ in range(30):
            g = encode(space, space.sample(rng))
            got = repair(g, fast, budget, rng, encode(space, fallback))
            assert lat.predict(decode(space, g)) <= budget + 1e-12
            assert got == pytest.approx(lat.predict(decode(space, g)), abs=1e-12)


def test_mutate_rate():
    space = SearchSpace()
    ranges = gene_ranges(space)
    rng = random.Random(3)
    changed = 0
    for _ in range(2000):
        g = [0] * len(ranges)
        mutate(g, ranges, rng, 0.1)
        changed += sum(v != 0 for v in g)
    expected = 2000 * sum(0.1 * (r - 1) / r for r in ranges)
    assert abs(changed - expected) < 0.1 * expected


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
    a, b = (search(space, acc, lat, budget, random.Random(5), population=32, generations=15, offspring=32)
            for _ in range(2))
    assert a.arch == b.arch and a.pareto == b.pareto
    c, d = (aging_evolution(space, acc, lat, budget, random.Random(4), evaluations=300, population=20, sample=5)
            for _ in range(2))
    assert c.evaluations == 300 and c.arch == d.arch and c.pareto == d.pareto
    assert a.predicted_latency_ms <= budget
    base = random_search(space, acc, lat, budget, random.Random(5), samples=a.evaluations)
    assert a.predicted_top1 >= base.predicted_top1
    lats = [p["latency_ms"] for p in a.pareto]
    tops = [p["top1"] for p in a.pareto]
    assert lats == sorted(lats) and tops == sorted(tops) and max(lats) <= budget
    assert isinstance(ArchSpec.from_dict(a.to_dict()["arch"]), ArchSpec)


@pytest.mark.parametrize("space", SPACES, ids=["full", "tiny"])
def test_searches_respect_the_budget_on_a_table(space):
    table, acc = synthetic_table(space, seed=1), FakeAccuracy(space)
    lo = table.min_latency()[0]
    hi = table.predict(space.largest())
    for frac in (0.0, 0.2, 0.7):
        budget = lo + frac * (hi - lo)
        for res in (search(space, acc, table, budget, random.Random(0), population=16, generations=8, offspring=16),
                    aging_evolution(space, acc, table, budget, random.Random(0), evaluations=150, population=16,
                                    sample=4),
                    random_search(space, acc, table, budget, random.Random(0), samples=100)):
            assert res.predicted_latency_ms == pytest.approx(table.predict(res.arch), abs=1e-9)
            assert table.predict(res.arch) <= budget + 1e-12
            assert all(p["latency_ms"] <= budget + 1e-12 for p in res.pareto)


def test_predictor_called_once_per_generation():
    space = SearchSpace()
    lat, acc = FakeLatency(space), FakeAccuracy(space)
    search(space, acc, lat, lat.min_latency()[0] * 3, random.Random(0), population=16, generations=10, offspring=16)
    assert acc.calls <= 11
