import itertools
import json

import numpy as np
import pytest

from hwofa.common import UserError
from profiler import LatencyTable, build_lut, get_target, load_profile
from profiler.build import calibration_archs, make_header, partial_path
from profiler.calibration import calibrate, fit_robust, outliers, worst_points
from profiler.lut import all_entries, arch_keys, overhead_key
from profiler.profiles import profile_from_dict
from supernet import ArchSpec, BlockSpec, SearchSpace

MICRO = SearchSpace.from_dict({"resolutions": [8, 12], "kernel_sizes": [3, 5], "expand_ratios": [3],
                               "depths": [1, 2], "num_stages": 2, "stem_channels": 8, "stage_channels": [8, 12],
                               "stage_strides": [1, 2], "stage_se": [False, True], "stage_act": ["relu", "hswish"],
                               "head_channels": 16})


def _enumerate(space):
    blocks = [BlockSpec(k, e) for k in space.kernel_sizes for e in space.expand_ratios]
    per_stage = [stage for d in space.depths for stage in itertools.product(blocks, repeat=d)]
    for r in space.resolutions:
        for stages in itertools.product(per_stage, repeat=space.num_stages):
            yield ArchSpec(r, tuple(stages))


def _synthetic(space, seed=0):
    import random

    rng = random.Random(seed)
    prof = load_profile("cpu-onnxruntime")
    table = LatencyTable(space, make_header(prof, space, get_target(prof)))
    for key in all_entries(space):
        table.entries[key] = {"p50_ms": rng.uniform(0.01, 0.2), "p90_ms": 0.3, "n": 50, "cv": 0.01}
    fid = {"within_10pct": 1.0, "mean_abs_pct_error": 1.0, "max_abs_pct_error": 2.0, "spearman": 1.0, "n": 20}
    table.calibration = {"a": 1.1, "b": 0.02, "fidelity": fid}
    return table


def test_keys_cover_every_arch_and_sum():
    table = _synthetic(MICRO)
    arch = MICRO.largest()
    keys = arch_keys(MICRO, arch)
    assert len(keys) == 2 + sum(arch.depths)
    o = table.entries[overhead_key(arch.resolution)]["p50_ms"]
    raw = sum(table.entries[k]["p50_ms"] - o for k in keys) + o
    assert table.predict(arch) == pytest.approx(1.1 * raw + 0.02)


def test_min_latency_is_exact():
    for seed in range(3):
        table = _synthetic(MICRO, seed)
        brute = min(table.predict(a) for a in _enumerate(MICRO))
        lat, arch = table.min_latency()
        assert lat == pytest.approx(brute) and table.predict(arch) == pytest.approx(lat)


def test_build_calibrates_robustly_and_swaps_in_complete(tmp_path):
    prof = profile_from_dict({"backend": "onnxruntime", "calibration": {"subnets": 20, "retry_s": 0},
                              "timing": {"warmup_s": 0.01, "round_runs": 5, "round_s": 0.005, "max_rounds": 6}},
                             name="micro-cpu", source="test")
    path = tmp_path / "lut.json"
    table = build_lut(prof, MICRO, path, progress=False)
    assert not partial_path(path).exists()
    fid = table.calibration["fidelity"]
    assert fid["n"] == 20 and fid["method"] == "leave-one-out" and "weight_mb" in table.calibration["model"]
    assert 0 <= fid["within_5pct"] <= fid["within_10pct"] <= 1 and fid["mean_abs_pct_error"] >= 0
    q = table.header["quality"]
    assert q["status"] in ("ok", "degraded") and q["entry_rounds"] >= 3 * len(all_entries(MICRO))
    assert q["repeatability"]["n"] == 8 and q["repeatability"]["median_abs_pct"] >= 0
    assert table.header["target_state"]["canary"]["ref_ms"] > 0 and table.header["target"]["cpu"]
    for entry in table.entries.values():
        assert entry["rounds_used"] >= 1 and len(entry["rounds"]) >= entry["rounds_used"]
    again = LatencyTable.load(path, space=MICRO, device="micro-cpu")
    assert again.predict(MICRO.largest()) == pytest.approx(table.predict(MICRO.largest()))
    assert again.predict(MICRO.largest()) > again.predict(MICRO.smallest())


def test_robust_fit_shrugs_off_a_bad_point():
    raw = np.linspace(0.1, 0.5, 20)
    measured = 1.2 * raw + 0.01
    measured[7] *= 1.6  # one subnet measured during a burst
    a, b, c = fit_robust(raw, measured)
    assert c == 0.0
    assert a == pytest.approx(1.2, rel=1e-6) and b == pytest.approx(0.01, abs=1e-6)
    points = [{"raw_ms": r, "measured_p50_ms": m} for r, m in zip(raw, measured, strict=True)]
    assert outliers(points, 0.10) == [7]
    cal = calibrate(points)
    assert cal["fidelity"]["within_10pct"] == pytest.approx(19 / 20)
    assert [p["measured_p50_ms"] for p in worst_points(cal, 0.10)] == [measured[7]]


def test_calibration_archs_distinct_and_include_extremes():
    archs = calibration_archs(SearchSpace(), 30, 0)
    assert len({a.key() for a in archs}) == 30
    assert SearchSpace().largest() in archs and SearchSpace().smallest() in archs


def test_corrupt_and_mismatched_luts(tmp_path):
    table = _synthetic(MICRO)
    path = tmp_path / "lut.json"
    table.save(path)
    LatencyTable.load(path, space=MICRO, device="cpu-onnxruntime")
    with pytest.raises(UserError, match="search space"):
        LatencyTable.load(path, space=SearchSpace())
    with pytest.raises(UserError, match="belongs to device"):
        LatencyTable.load(path, device="cpu-openvino")
    path.write_text(path.read_text()[:200])
    with pytest.raises(UserError, match="not valid JSON"):
        LatencyTable.load(path)
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(UserError, match="not a hwofa latency table"):
        LatencyTable.load(path)
    data = table.to_dict()
    del data["entries"][next(iter(data["entries"]))]
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="incomplete"):
        LatencyTable.load(path)
