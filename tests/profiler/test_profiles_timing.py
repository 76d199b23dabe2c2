import time

import pytest

from profiler import TimingProtocol, list_profiles, load_profile, measure
from profiler.timing import measure_stable, summarize
from supernet import UserError


def test_shipped_profiles_load():
    names = list_profiles()
    assert "cpu-onnxruntime" in names
    for n in names:
        prof = load_profile(n)
        assert prof.name == n and prof.calibration_subnets >= 20


def test_unknown_device_suggests_close_names():
    with pytest.raises(UserError, match="Did you mean cpu-onnxruntime"):
        load_profile("cpu-onnxrt")


@pytest.mark.parametrize("text,needle", [("backend: [", "not valid YAML"), ("threads: 2", "needs a 'backend'"),
                                         ("backend: onnxruntime\ncolour: red", "unknown key"),
                                         ("backend: onnxruntime\ntiming: {min_runs: 5}", "floor"),
                                         ("backend: onnxruntime\nkind: phone", "kind must be")])
def test_bad_profiles(tmp_path, text, needle):
    path = tmp_path / "dev.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=needle):
        load_profile(path)


def test_measure_meets_run_and_time_floors():
    calls = {"n": 0}

    def run():
        calls["n"] += 1

    t0 = time.perf_counter()
    t = measure(run, TimingProtocol())
    elapsed = time.perf_counter() - t0
    assert t.n >= 50 and elapsed >= 0.25 + 0.1
    assert calls["n"] >= t.n + 10
    assert 0 <= t.p50_ms <= t.p90_ms


def test_measure_of_slow_call_keeps_min_runs():
    t = measure(lambda: time.sleep(0.002), TimingProtocol())
    assert t.n >= 50 and 1.9 < t.p50_ms < 20


def test_summarize_robust_cv():
    t = summarize([0.001] * 90 + [0.1] * 2 + [0.0011] * 8)
    assert t.p50_ms == pytest.approx(1.0) and t.cv < 0.05  # rare hiccups do not blow up the CV
    assert summarize([0.001, 0.002, 0.003, 0.004]).cv > 0.3


def test_measure_stable_retries_noisy(monkeypatch):
    import profiler.timing as timing

    seq = iter([summarize([0.001, 0.005] * 30), summarize([0.001] * 60)])
    monkeypatch.setattr(timing, "measure", lambda run, protocol: next(seq))
    assert measure_stable(lambda: None, TimingProtocol()).cv == 0
