import random

import numpy as np
import pytest

from evolve import aging_evolution, gene_ranges, random_search
from evolve.strategies import Policy, reinforce, tpe
from hwofa.common import UserError
from supernet import SearchSpace
from tests.conftest import TINY_SPACE
from tests.evolve.evolve_fakes import FakeAccuracy, FakeLatency, synthetic_table


class CountingAccuracy(FakeAccuracy):
    """FakeAccuracy that records every distinct arch it is asked about."""

    def __init__(self, space):
        super().__init__(space)
        self.seen: set[str] = set()
        self.asked = 0

    def predict(self, archs):
        self.asked += len(archs)
        self.seen.update(a.key() for a in archs)
        return super().predict(archs)


class KnownBest:
    """Top-1 rises with every choice's index (largest resolution, kernel, expand, depth): the best arch is known."""

    def __init__(self, space):
        self.space = space

    def predict(self, archs):
        sp = self.space
        out = []
        for a in archs:
            score = sp.resolutions.index(a.resolution) / (len(sp.resolutions) - 1)
            for stage in a.stages:
                score += sp.depths.index(len(stage)) / (len(sp.depths) - 1)
                score += sum(sp.kernel_sizes.index(b.kernel_size) + sp.expand_ratios.index(b.expand_ratio)
                             for b in stage) / (4 * sp.max_depth)
            out.append(score / (1 + 2 * sp.num_stages))
        return np.array(out)


def _tpe(*args, **kw):
    pytest.importorskip("optuna", reason="TPE needs optuna (the bench extra)")
    return tpe(*args, **kw)


STRATEGIES = {
    "reinforce": lambda sp, acc, lat, b, rng, n: reinforce(sp, acc, lat, b, rng, evaluations=n),
    "tpe": lambda sp, acc, lat, b, rng, n: _tpe(sp, acc, lat, b, rng, evaluations=n),
    "aging": lambda sp, acc, lat, b, rng, n: aging_evolution(sp, acc, lat, b, rng, evaluations=n, population=20,
                                                             sample=5),
    "random": lambda sp, acc, lat, b, rng, n: random_search(sp, acc, lat, b, rng, samples=n),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_exact_budget_feasible_and_deterministic(name):
    space = SearchSpace()
    table = synthetic_table(space, seed=2)
    lo, hi = table.min_latency()[0], table.predict(space.largest())
    budget = lo + 0.2 * (hi - lo)
    acc = CountingAccuracy(space)
    a = STRATEGIES[name](space, acc, table, budget, random.Random(7), 80)
    assert a.evaluations == 80 and len(acc.seen) == 80 and acc.asked == 80  # each arch predicted once
    assert table.predict(a.arch) <= budget + 1e-12
    assert a.predicted_latency_ms == pytest.approx(table.predict(a.arch), abs=1e-9)
    assert all(p["latency_ms"] <= budget + 1e-12 for p in a.pareto)
    b = STRATEGIES[name](space, FakeAccuracy(space), table, budget, random.Random(7), 80)
    assert (b.arch, b.predicted_top1, b.pareto) == (a.arch, a.predicted_top1, a.pareto)
    c = STRATEGIES[name](space, FakeAccuracy(space), table, budget, random.Random(8), 80)
    assert c.pareto != a.pareto


@pytest.mark.parametrize("name", ["reinforce", "tpe"])
def test_tiny_space_ends_and_infeasible_budget_refused(name):
    """A space smaller than the budget ends after the draw limit; a budget under the minimum is exit 2."""
    space = SearchSpace.from_dict(TINY_SPACE)
    lat = FakeLatency(space)
    lo = lat.min_latency()[0]
    res = STRATEGIES[name](space, FakeAccuracy(space), lat, lo * 1.2, random.Random(0), 10)  # 6 archs fit
    assert 1 <= res.evaluations <= 6 and res.predicted_latency_ms <= lo * 1.2
    with pytest.raises(UserError, match=f"{lo:.4f} ms"):
        STRATEGIES[name](space, FakeAccuracy(space), lat, lo * 0.5, random.Random(0), 10)


def test_reinforce_learns_the_known_best():
    """Without a binding budget the best arch is the largest: the policy's batches climb towards it."""
    space = SearchSpace()
    lat = FakeLatency(space)
    res = reinforce(space, KnownBest(space), lat, lat.predict(space.largest()), random.Random(0), evaluations=800)
    curve = res.settings["curve"]
    rnd = random_search(space, KnownBest(space), lat, lat.predict(space.largest()), random.Random(0), samples=800)
    assert np.mean(curve[-5:]) > curve[0] + 0.15
    assert res.predicted_top1 > rnd.predicted_top1 + 0.05
    assert res.settings["final_entropy"] < 0.8 * Policy(gene_ranges(space), 0.1).entropy()


def test_policy_samples_within_ranges_and_steps_towards_reward():
    policy = Policy([2, 3, 1], lr=0.5)
    gen = np.random.default_rng(0)
    x = policy.sample(2000, gen)
    assert x.shape == (2000, 3) and x[:, 0].max() == 1 and x[:, 1].max() == 2 and x[:, 2].max() == 0
    assert np.allclose(np.bincount(x[:, 1]) / 2000, 1 / 3, atol=0.04)
    for _ in range(30):  # reward choice 2 of gene 1
        x = policy.sample(64, gen)
        adv = (x[:, 1] == 2).astype(float) - 1 / 3
        policy.step(x, np.ones(x.shape), adv, entropy_weight=0.0)
    p = policy.probs()
    assert p[1, 2] > 0.9 and p[2, 0] == 1 and np.isclose(p[0].sum(), 1) and p[0, 2] == 0
