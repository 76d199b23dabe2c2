"""Finalists, cross-device report and budgets: pure logic on fakes (no supernet, no device)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from export.crossdevice import Cell, CrossDeviceReport, Subnet
from export.fronts_plot import Panel, fronts_png
from hwofa.budgets import device_budgets, split_device
from hwofa.common import UserError
from hwofa.finalists import choose, margin_for, settle
from profiler import Timing


@dataclass(frozen=True)
class Arch:
    name: str

    def key(self) -> str:
        return self.name

    def to_dict(self) -> dict:
        return {"name": self.name}


@dataclass(frozen=True)
class Point:
    arch: Arch
    predicted_latency_ms: float
    predicted_top1: float


class FakeFront:
    """Points p0 (fastest) .. p9 (slowest, most accurate), predicted latency 0.1 .. 1.0 ms."""

    def __init__(self) -> None:
        self.points = [Point(Arch(f"p{i}"), 0.1 * (i + 1), 0.8 + 0.01 * i) for i in range(10)]

    def under(self, budget_ms: float, k: int = 1) -> list[Point]:
        fits = [p for p in self.points if p.predicted_latency_ms <= budget_ms + 1e-12]
        if not fits:
            raise UserError(f"nothing under {budget_ms}")
        return sorted(fits, key=lambda p: -p.predicted_top1)[:k]


class FakeExporter:
    """Measures arch `pN` at `scale` x its predicted latency; counts what it was asked."""

    def __init__(self, scale: float, source: str = "measured", calibrated_scale: float | None = None) -> None:
        self.scale, self.calibrated_scale = scale, calibrated_scale
        self.profile = SimpleNamespace(name="fake")
        self.target = SimpleNamespace(source=source, cost_many=self.cost_many)
        self.rounds: list[list[str]] = []

    def candidate(self, arch: Arch, calibrate: bool = True) -> SimpleNamespace:
        tag = b"" if calibrate is False or self.calibrated_scale is None else b"+bn"
        return SimpleNamespace(arch=arch, deployed=SimpleNamespace(model_bytes=arch.name.encode() + tag))

    def source(self, cand: SimpleNamespace):
        return lambda: cand.deployed.model_bytes

    def _ms(self, model: bytes) -> float:
        i = int(model.decode().split("+")[0][1:])
        scale = self.calibrated_scale if model.endswith(b"+bn") else self.scale
        return 0.1 * (i + 1) * scale

    def cost_many(self, models: dict, rng: random.Random, **_: object) -> dict[str, Timing]:
        self.rounds.append(sorted(models))
        return {k: Timing(self._ms(src()), self._ms(src()), 10, 0.01) for k, src in models.items()}

    def measure(self, cand: SimpleNamespace) -> Timing:
        ms = self._ms(cand.deployed.model_bytes)
        return Timing(ms, ms, 10, 0.01)


def test_most_accurate_finalist_that_meets_the_budget_is_chosen():
    ex = FakeExporter(scale=1.0)
    choice = choose(ex, FakeFront(), 0.5, k=3)
    assert [f.point.arch.name for f in choice.finalists] == ["p4", "p3", "p2"]
    assert choice.met and choice.chosen.point.arch.name == "p4" and choice.rounds == 1
    cand, timing = settle(ex, choice, 0.5)
    assert cand.arch.name == "p4" and timing.p50_ms == pytest.approx(0.5)


def test_slower_device_measures_faster_points_below_the_fastest_failing_one():
    ex = FakeExporter(scale=1.3)  # the LUT underestimates by 30 %: p4..p2 measure 0.65..0.39
    choice = choose(ex, FakeFront(), 0.5, k=3)
    assert choice.met and choice.rounds == 1 and choice.chosen.point.arch.name == "p2"  # 0.39 ms meets it
    ex = FakeExporter(scale=2.0)  # p4..p2 measure 1.0..0.6: all miss; next below 0.3 * 0.5 / 0.6 = 0.25 ms
    choice = choose(ex, FakeFront(), 0.5, k=3)
    assert ex.rounds == [["p2", "p3", "p4"], ["p0", "p1"]]
    assert choice.met and choice.chosen.point.arch.name == "p1" and choice.rounds == 2
    d = choice.to_dict(0.5)
    assert [f["round"] for f in d["finalists"]] == [0, 0, 0, 1, 1]
    assert d["finalists"][0]["measured_p50_ms"] == pytest.approx(1.0) and not d["finalists"][0]["meets_budget"]


def test_no_finalist_meets_the_budget_keeps_the_closest_and_says_so():
    ex = FakeExporter(scale=10.0, source="modelled")
    choice = choose(ex, FakeFront(), 0.5, k=3, extra_rounds=2)
    assert not choice.met and choice.chosen.point.arch.name == "p0"
    assert "no finalist met the budget" in choice.note and len(ex.rounds) <= 3
    assert "modelled_ms" in choice.to_dict(0.5)["finalists"][0]
    cand, timing = settle(ex, choice, 0.5)
    assert cand.arch.name == "p0" and timing.p50_ms > 0.5


def test_bundle_model_measured_again_and_the_next_finalist_tried_when_it_misses():
    ex = FakeExporter(scale=1.0, calibrated_scale=1.05)  # the recalibrated model of p4 measures 0.525 > 0.5
    choice = choose(ex, FakeFront(), 0.5, k=3)
    cand, timing = settle(ex, choice, 0.5)
    assert cand.arch.name == "p3" and timing.p50_ms <= 0.5 and choice.chosen.point.arch.name == "p3"
    assert choice.finalists[0].bundle_ms == pytest.approx(0.525)


def test_device_budgets_parse_and_refuse_naming_the_device():
    bs = device_budgets(["cpu-onnxruntime=0.25", "cpu-openvino"], 1.5)
    assert [(b.name, b.budget_ms) for b in bs] == [("cpu-onnxruntime", 0.25), ("cpu-openvino", 1.5)]
    assert split_device("cpu-onnxruntime") == ("cpu-onnxruntime", None)
    for text, needle in [("cpu-openvino=fast", "budget of 'cpu-openvino' ('fast')"),
                         ("cpu-openvino=-1", "the budget of 'cpu-openvino' must be a positive"),
                         ("cpu-openvino=nan", "the budget of 'cpu-openvino' must be a positive"),
                         ("=1", "names no device")]:
        with pytest.raises(UserError) as exc:
            device_budgets(["cpu-onnxruntime=1", text])
        assert needle in str(exc.value)
    with pytest.raises(UserError, match="device 'cpu-openvino' has no latency budget"):
        device_budgets(["cpu-onnxruntime=1", "cpu-openvino"])
    with pytest.raises(UserError, match="named twice"):
        device_budgets(["cpu-onnxruntime=1", "cpu-onnxruntime=2"])


def _report() -> CrossDeviceReport:
    rows = [Subnet("a", 1.0, {}, "A", 0.91, 0.91, 0.92, "fp32", True, "measured: x 1", "a/"),
            Subnet("b", 0.5, {}, "B", 0.92, 0.90, 0.915, "int8", True, "modelled: y 2", "b/")]
    cells = {"a": {"a": Cell(0.9, "measured", 1.0), "b": Cell(0.7, "modelled", 0.5)},
             "b": {"a": Cell(0.8, "measured", 1.0), "b": Cell(0.45, "modelled", 0.5)}}
    return CrossDeviceReport(rows, cells, "fashion-mnist", 0.004)


def test_cross_device_report_marks_over_budget_and_explains_the_winner():
    rep = _report()
    table = rep.table()
    assert "0.700 ms modelled (1.40× ✗ over)" in table and "**0.900 ms (0.90×)**" in table
    assert "90.00 % int8" in table
    verdicts = rep.verdicts()
    assert "its own is the most accurate of them" in verdicts[1]
    assert "b's scores 1.00 points above its own" in verdicts[0] and "predicted less accurate" in verdicts[0]
    d = rep.to_dict()
    assert d["matrix"]["a"]["b"]["over_budget"] is True and d["best_that_fits"] == {"a": "b", "b": "b"}
    assert "| a | `a/` | yes |" in rep.markdown()


def test_fronts_png(tmp_path):
    panels = [Panel("a", 0.5, [(0.1, 0.8), (0.4, 0.9)], "measured", [(0.45, 0.9)], (0.45, 0.9)),
              Panel("b", 0.2, [(0.05, 0.8), (0.3, 0.9)], "modelled", [], None)]
    fronts_png(tmp_path / "fronts.png", panels, "t")
    assert (tmp_path / "fronts.png").read_bytes()[:4] == b"\x89PNG"


def test_measured_latency_keeps_a_margin_for_measuring_again():
    ex = FakeExporter(scale=1.0)
    choice = choose(ex, FakeFront(), 0.5, k=3, margin=0.1)  # within 0.4545 ms: p4 (0.5 ms) is not a finalist
    assert ex.rounds == [["p1", "p2", "p3"]] and choice.chosen.point.arch.name == "p3"
    assert choice.to_dict(0.5)["margin_pct"] == 10.0
    ex = FakeExporter(scale=1.2)  # p3 measures 0.48: over the margin, within the budget; no more rounds
    choice = choose(ex, FakeFront(), 0.5, k=1, margin=0.1, extra_rounds=0)
    assert choice.met and choice.chosen.point.arch.name == "p3" and "none within the 10.0 % margin" in choice.note
    assert margin_for("modelled", 5.0) == 0.0 and margin_for("measured", 5.0) == pytest.approx(0.05)
    assert margin_for("measured", 40.0) == 0.10 and margin_for("measured", None) == 0.0
