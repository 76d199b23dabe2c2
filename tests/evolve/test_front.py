"""search_front: a non-dominated, sorted front whose `under` answers any budget."""

import itertools
import json
import random

import pytest

from evolve import Front, FrontPoint, search, search_front, search_fronts
from hwofa.common import UserError
from supernet import SearchSpace
from tests.conftest import TINY_SPACE
from tests.evolve.evolve_fakes import FakeAccuracy, FakeLatency, synthetic_table

SPACES = [SearchSpace(), SearchSpace.from_dict(TINY_SPACE)]


def _front(space, seed=0, **kw):
    table = synthetic_table(space, seed=2)
    return table, search_front(space, FakeAccuracy(space), table, random.Random(seed), population=24,
                               generations=15, **kw)


@pytest.mark.parametrize("space", SPACES, ids=["full", "tiny"])
def test_front_is_sorted_non_dominated_and_starts_at_the_fastest_arch(space):
    table, front = _front(space)
    lats = [p.predicted_latency_ms for p in front.points]
    tops = [p.predicted_top1 for p in front.points]
    assert len(front.points) > 3
    assert lats == sorted(lats) and all(a < b for a, b in itertools.pairwise(tops))  # sorted and non-dominated
    lo, _ = table.min_latency()
    assert lats[0] == pytest.approx(lo, abs=1e-9)
    for p in front.points:
        assert p.predicted_latency_ms == pytest.approx(table.predict(p.arch), abs=1e-9)
        space.validate(p.arch)
    assert front.evaluations >= len(front.points)


def test_under_respects_budget_and_k():
    space = SearchSpace()
    table, front = _front(space)
    lats = [p.predicted_latency_ms for p in front.points]
    for budget in (lats[0], lats[len(lats) // 2], lats[-1] * 2):
        got = front.under(budget, 3)
        assert 1 <= len(got) <= 3 and all(p.predicted_latency_ms <= budget for p in got)
        assert [p.predicted_top1 for p in got] == sorted((p.predicted_top1 for p in got), reverse=True)
        best = max((p for p in front.points if p.predicted_latency_ms <= budget), key=lambda p: p.predicted_top1)
        assert got[0] == best == front.best_under(budget)
    assert len(front.under(lats[-1], 5)) == min(5, len(front.points))


def test_infeasible_budget_names_smallest_latency():
    space = SearchSpace()
    table, front = _front(space)
    lo = table.min_latency()[0]
    with pytest.raises(UserError, match=f"infeasible budget.*{lo:.4f} ms"):
        front.under(lo * 0.5, 3)
    with pytest.raises(UserError, match="positive"):
        front.under(float("nan"))
    with pytest.raises(UserError, match=f"{lo:.4f} ms"):
        search_front(space, FakeAccuracy(space), table, random.Random(0), population=8, generations=1,
                     max_latency_ms=lo * 0.5)


def test_same_seed_same_front_and_json_round_trip():
    space = SearchSpace()
    _, a = _front(space, seed=7)
    _, b = _front(space, seed=7)
    assert a.points == b.points
    back = Front.from_dict(json.loads(json.dumps(a.to_dict())))
    assert back.points == a.points and back.evaluations == a.evaluations
    assert isinstance(back.points[0], FrontPoint)
    bad = a.to_dict()
    bad["points"] = bad["points"][::-1]
    with pytest.raises(UserError, match="sorted"):
        Front.from_dict(bad)
    with pytest.raises(UserError, match="front"):
        Front.from_dict({"points": []})


@pytest.mark.parametrize("space", SPACES, ids=["full", "tiny"])
def test_max_latency_bounds_the_front(space):
    table = synthetic_table(space, seed=2)
    lo, hi = table.min_latency()[0], table.predict(space.largest())
    cap = lo + 0.3 * (hi - lo)
    front = search_front(space, FakeAccuracy(space), table, random.Random(1), population=24, generations=10,
                         max_latency_ms=cap)
    assert front.points and all(p.predicted_latency_ms <= cap + 1e-12 for p in front.points)


def test_front_works_with_any_latency_model_and_batches_the_predictor():
    space = SearchSpace()
    lat, acc = FakeLatency(space), FakeAccuracy(space)
    front = search_front(space, acc, lat, random.Random(0), population=16, generations=10)
    assert acc.calls <= 11
    budget = lat.min_latency()[0] * 3
    single = search(space, acc, lat, budget, random.Random(0), population=16, generations=10, offspring=16)
    assert front.best_under(budget).predicted_latency_ms <= budget
    assert single.predicted_latency_ms <= budget


def test_devices_searched_together_share_the_predictor():
    space = SearchSpace.from_dict(TINY_SPACE)
    tables = {"a": synthetic_table(space, seed=2), "b": synthetic_table(space, seed=9), "c": FakeLatency(space)}
    acc = FakeAccuracy(space)
    cap = {"b": tables["b"].min_latency()[0] * 1.5}
    fronts = search_fronts(space, acc, tables, random.Random(3), population=12, generations=10, max_latency_ms=cap)
    assert acc.calls <= 10 + 3  # one predictor call per generation for all devices (+ one per start)
    assert set(fronts) == {"a", "b", "c"}
    for name, front in fronts.items():
        lats = [p.predicted_latency_ms for p in front.points]
        assert lats == sorted(lats) and lats[0] == pytest.approx(tables[name].min_latency()[0], abs=1e-9)
        assert all(p.predicted_latency_ms == pytest.approx(tables[name].predict(p.arch), abs=1e-9)
                   for p in front.points)
    assert max(p.predicted_latency_ms for p in fronts["b"].points) <= cap["b"]
    again = search_fronts(space, FakeAccuracy(space), tables, random.Random(3), population=12, generations=10,
                          max_latency_ms=cap)
    assert all(again[d].points == fronts[d].points for d in fronts)
    with pytest.raises(UserError, match="no device"):
        search_fronts(space, acc, {}, random.Random(3))
