import itertools
import json

import pytest

from profiler import LatencyTable, build_lut, load_profile
from profiler.build import calibration_archs, make_header
from profiler.lut import all_entries, arch_keys, overhead_key
from supernet import ArchSpec, BlockSpec, SearchSpace, UserError

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
    table = LatencyTable(space, make_header(prof, space, "test"))
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


def test_build_flushes_resumes_and_calibrates(tmp_path, monkeypatch):
    import profiler.build as build

    prof = load_profile("cpu-onnxruntime")
    path = tmp_path / "lut.json"
    real, calls = build.time_module, {"n": 0}

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(build, "time_module", dying)
    with pytest.raises(KeyboardInterrupt):
        build_lut(prof, MICRO, path, progress=False)
    partial = json.loads(path.read_text())
    assert len(partial["entries"]) == 5 and partial["calibration"] is None
    measured = []
    monkeypatch.setattr(build, "time_module", lambda *a, **k: measured.append(1) or real(*a, **k))
    table = build_lut(prof, MICRO, path, progress=False)
    n_entries = len(all_entries(MICRO))
    assert len(measured) == n_entries - 5 + prof.calibration_subnets  # nothing measured twice
    fid = table.calibration["fidelity"]
    assert fid["n"] == prof.calibration_subnets and fid["method"] == "leave-one-out"
    assert 0 <= fid["within_10pct"] <= 1 and fid["mean_abs_pct_error"] >= 0
    again = LatencyTable.load(path, space=MICRO, device="cpu-onnxruntime")
    assert again.predict(MICRO.largest()) == pytest.approx(table.predict(MICRO.largest()))
    assert again.predict(MICRO.largest()) > again.predict(MICRO.smallest())


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
