"""The search's fast path equals the slow one: latency from gene costs, features and keys from genomes."""

import random

import numpy as np
import pytest

from evolve import decode, encode, features
from evolve._fast import AccuracyCache, GenomeLayout, TableLatency, genome_latency
from supernet import SearchSpace
from tests.conftest import TINY_SPACE
from tests.evolve.evolve_fakes import FakeAccuracy, FakeLatency, synthetic_table

SPACES = [SearchSpace(), SearchSpace.from_dict(TINY_SPACE)]


@pytest.mark.parametrize("space", SPACES, ids=["full", "tiny"])
@pytest.mark.parametrize("calibrated", [True, False])
def test_gene_costs_equal_predict(space, calibrated):
    table = synthetic_table(space, seed=3, calibrated=calibrated)
    costs, fast = table.gene_costs(), genome_latency(GenomeLayout(space), table)
    assert isinstance(fast, TableLatency)
    rng = random.Random(0)
    for arch in [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(500)]:
        exact = table.predict(arch)
        assert costs.predict(arch) == pytest.approx(exact, abs=1e-9)
        assert fast.of(encode(space, arch)) == pytest.approx(exact, abs=1e-9)


@pytest.mark.parametrize("space", SPACES, ids=["full", "tiny"])
def test_one_step_updates_equal_full_sums(space):
    layout = GenomeLayout(space)
    table = synthetic_table(space, seed=4)
    fast = genome_latency(layout, table)
    rng = random.Random(1)
    for _ in range(100):
        g = encode(space, space.sample(rng))
        lat = fast.of(g)
        for i in layout.active(g):
            if g[i] > 0:
                lowered = fast.lowered(g, i, lat)
                g[i] -= 1
                assert lowered == pytest.approx(table.predict(decode(space, g)), abs=1e-9)
                g[i] += 1


@pytest.mark.parametrize("space", SPACES, ids=["full", "tiny"])
def test_keys_and_features_from_genomes(space):
    layout = GenomeLayout(space)
    rng = random.Random(2)
    genomes = [encode(space, space.sample(rng)) for _ in range(200)]
    for g in genomes:  # inactive genes do not change the key
        arch = decode(space, g)
        assert layout.arch(layout.key(g)) == arch
        noisy = list(g)
        for i in set(range(len(g))) - set(layout.active(g)):
            noisy[i] = rng.randrange(layout.ranges[i])
        assert layout.key(noisy) == layout.key(g)
    noisy = [list(g) for g in genomes]  # inactive genes at random values: the features ignore them
    for g in noisy:
        for i in set(range(len(g))) - set(layout.active(g)):
            g[i] = rng.randrange(layout.ranges[i])
    archs = [decode(space, g) for g in genomes]
    for kind in ("onehot", "slots"):
        np.testing.assert_array_equal(layout.features(noisy, kind), features(space, archs, kind))


def test_accuracy_cache_predicts_each_arch_once():
    space = SearchSpace.from_dict(TINY_SPACE)
    layout, acc = GenomeLayout(space), FakeAccuracy(space)
    cache = AccuracyCache(layout, acc)
    rng = random.Random(3)
    genomes = [encode(space, space.sample(rng)) for _ in range(30)]
    keys = [layout.key(g) for g in genomes]
    first = cache(keys, genomes)
    assert cache(keys, genomes) == first and acc.calls == 1
    assert first == pytest.approx(list(acc.predict([decode(space, g) for g in genomes])))


def test_generic_latency_models_still_work():
    space = SearchSpace()
    fast = genome_latency(GenomeLayout(space), FakeLatency(space))
    g = encode(space, space.largest())
    assert fast.of(g) == FakeLatency(space).predict(space.largest())


def test_predictor_fast_path_equals_predict():
    import torch

    from evolve import AccuracyPredictor

    space = SearchSpace()
    torch.manual_seed(0)
    model = AccuracyPredictor(space)
    layout = GenomeLayout(space)
    rng = random.Random(4)
    genomes = [encode(space, space.sample(rng)) for _ in range(50)]
    threads = torch.get_num_threads()
    got = AccuracyCache(layout, model)([layout.key(g) for g in genomes], genomes)
    assert torch.get_num_threads() == threads
    assert got == pytest.approx(list(model.predict([decode(space, g) for g in genomes])), abs=1e-6)


@pytest.mark.parametrize("space", SPACES, ids=["full", "tiny"])
def test_vectorised_latency_equals_one_by_one(space):
    layout = GenomeLayout(space)
    fast = genome_latency(layout, synthetic_table(space, seed=5))
    rng = random.Random(5)
    genomes = [encode(space, space.sample(rng)) for _ in range(300)]
    assert fast.of_many(genomes) == [fast.of(g) for g in genomes]  # same sums in the same order: equal
