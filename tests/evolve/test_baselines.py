import random

import pytest

from evolve.baselines import evolution_finder, nsga2_no_repair, ofa_crossover, ofa_mutate
from hwofa.common import UserError
from supernet import SearchSpace
from tests.conftest import TINY_SPACE
from tests.evolve.evolve_fakes import FakeAccuracy, FakeLatency, synthetic_table

SEARCHES = {
    "ofa_native": lambda sp, acc, lat, b, rng, n: evolution_finder(sp, acc, lat, b, rng, evaluations=n,
                                                                   constraint="native", population=20),
    "ofa_repair": lambda sp, acc, lat, b, rng, n: evolution_finder(sp, acc, lat, b, rng, evaluations=n,
                                                                   constraint="repair", population=20),
    "nsga2_norepair": lambda sp, acc, lat, b, rng, n: nsga2_no_repair(sp, acc, lat, b, rng, evaluations=n,
                                                                      population=20),
}


class RecordingAccuracy(FakeAccuracy):
    """FakeAccuracy that records every arch it is asked about."""

    def __init__(self, space):
        super().__init__(space)
        self.asked: list = []

    def predict(self, archs):
        self.asked += archs
        return super().predict(archs)


def _budget(table, space, frac):
    lo, hi = table.min_latency()[0], table.predict(space.largest())
    return lo + frac * (hi - lo)


@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_feasible_exact_budget_and_deterministic(name):
    space = SearchSpace()
    table = synthetic_table(space, seed=2)
    budget = _budget(table, space, 0.15)
    acc = RecordingAccuracy(space)
    a = SEARCHES[name](space, acc, table, budget, random.Random(7), 300)
    keys = [arch.key() for arch in acc.asked]
    assert a.evaluations == 300 and len(keys) == len(set(keys)) == 300  # each arch predicted once, 300 in all
    assert all(table.predict(arch) <= budget + 1e-12 for arch in acc.asked)  # nothing over the budget predicted
    assert table.predict(a.arch) <= budget + 1e-12
    assert a.predicted_latency_ms == pytest.approx(table.predict(a.arch), abs=1e-9)
    assert a.predicted_top1 == max(p["top1"] for p in a.pareto)
    b = SEARCHES[name](space, FakeAccuracy(space), table, budget, random.Random(7), 300)
    assert (b.arch, b.predicted_top1, b.pareto, b.settings) == (a.arch, a.predicted_top1, a.pareto, a.settings)
    c = SEARCHES[name](space, FakeAccuracy(space), table, budget, random.Random(8), 300)
    assert c.pareto != a.pareto


def test_native_rejects_and_repair_repairs():
    """At a tight budget most random archs are over it: native redraws them (never repairs), repair draws once."""
    space = SearchSpace()
    table = synthetic_table(space, seed=2)
    budget = _budget(table, space, 0.15)
    native = evolution_finder(space, FakeAccuracy(space), table, budget, random.Random(0), 300, "native", population=20)
    repair = evolution_finder(space, FakeAccuracy(space), table, budget, random.Random(0), 300, "repair", population=20)
    assert native.settings["rejected"] > 0 and native.settings["given_up"] == 0
    assert native.settings["draws"] - native.settings["rejected"] >= 300
    assert repair.settings["rejected"] == 0 and repair.settings["draws"] < native.settings["draws"]
    assert native.settings["generations"] > 0 and native.settings["algorithm"] == "OFA EvolutionFinder, native"


def test_native_bounded_on_a_budget_random_draws_never_meet():
    """Only the smallest arch fits: OFA's unbounded loop would spin forever; here each of the first population's
    slots gives up after `max_tries` draws and the search is refused with the tries and the smallest latency."""
    space = SearchSpace()
    lat = FakeLatency(space)
    lo = lat.min_latency()[0]
    acc = FakeAccuracy(space)
    with pytest.raises(UserError, match=rf"drew 200 random archs and none fits .* {lo:.4f} ms.*'repair'"):
        evolution_finder(space, acc, lat, lo, random.Random(0), 100, "native", population=10, max_tries=20)
    assert acc.calls == 0
    res = evolution_finder(space, acc, lat, lo, random.Random(0), 100, "repair", population=10, max_tries=20)
    assert res.arch == space.smallest() and res.predicted_latency_ms == pytest.approx(lo)


def test_space_smaller_than_budget_ends_after_draw_limit():
    space = SearchSpace.from_dict(TINY_SPACE)
    lat = FakeLatency(space)
    lo = lat.min_latency()[0]
    for constraint in ("native", "repair"):
        res = evolution_finder(space, FakeAccuracy(space), lat, lo * 1.2, random.Random(0), 10, constraint,
                               population=8, max_tries=50)
        assert 1 <= res.evaluations <= 6 and res.predicted_latency_ms <= lo * 1.2  # 6 archs fit
        assert res.settings["draws"] <= 20 * 10
    res = nsga2_no_repair(space, FakeAccuracy(space), lat, lo * 1.2, random.Random(0), 10, population=8)
    assert 1 <= res.evaluations <= 6 and res.settings["draws"] <= 20 * 10 + 8


def test_refusals():
    space = SearchSpace.from_dict(TINY_SPACE)
    lat = FakeLatency(space)
    lo = lat.min_latency()[0]
    with pytest.raises(ValueError, match="constraint"):
        evolution_finder(space, FakeAccuracy(space), lat, lo * 2, random.Random(0), 10, "penalty")
    for search in (evolution_finder, nsga2_no_repair):
        with pytest.raises(UserError, match=f"{lo:.4f} ms"):
            search(space, FakeAccuracy(space), lat, lo * 0.5, random.Random(0), 10)


def test_ofa_operators():
    rng = random.Random(0)
    ranges = [3] * 40
    ind = [0] * 40
    assert ofa_mutate(list(ind), ranges, rng, 0.0, 0.0)[0] == ind
    mutated = [ofa_mutate(list(ind), ranges, rng, 0.1, 0.0)[0] for _ in range(300)]
    assert all(m[0] == 0 for m in mutated)  # resolution kept at probability 0
    changed = sum(g != 0 for m in mutated for g in m[1:]) / (300 * 39)
    assert changed == pytest.approx(0.1 * 2 / 3, abs=0.01)  # redrawn with 0.1, to another value 2/3 of the time
    moved = sum(ofa_mutate(list(ind), ranges, rng, 0.0, 0.5)[0][0] != 0 for _ in range(600))
    assert moved == pytest.approx(600 * 0.5 * 2 / 3, abs=40)
    a, b = list(range(40)), list(range(100, 140))
    child = ofa_crossover(a, b, rng)
    assert all(c in (x, y) for c, x, y in zip(child, a, b, strict=True)) and child not in (a, b)
    assert a == list(range(40)) and b == list(range(100, 140))  # parents untouched
