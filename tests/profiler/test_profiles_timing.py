import random
import time

import pytest

from hwofa.common import UserError
from profiler import TimingProtocol, list_profiles, load_profile
from profiler.interleave import Canary, measure_many
from profiler.timing import Round, densest_group, estimate, measure_stable, normalized, summarize_round


def test_shipped_profiles_load():
    names = list_profiles()
    assert "cpu-onnxruntime" in names
    for n in names:
        prof = load_profile(n)
        assert prof.name == n and prof.calibration_subnets >= 20
        assert prof.fidelity_goal == (0.10, 0.9)


def test_unknown_device_suggests_close_names():
    with pytest.raises(UserError, match="Did you mean cpu-onnxruntime"):
        load_profile("cpu-onnxrt")


@pytest.mark.parametrize("text,needle", [("backend: [", "not valid YAML"), ("threads: 2", "needs a 'backend'"),
                                         ("backend: onnxruntime\ncolour: red", "unknown key"),
                                         ("backend: onnxruntime\ntiming: {rounds: 1}", "floor"),
                                         ("backend: onnxruntime\ntiming: {min_runs: 50}", "min_runs"),
                                         ("backend: onnxruntime\ntiming: 3", "must be a mapping"),
                                         ("backend: onnxruntime\ncalibration: {subnets: 30, tol: 1}", "tol"),
                                         ("backend: onnxruntime\ncalibration: {min_share: 2}", "min_share"),
                                         ("backend: onnxruntime\nkind: phone", "kind must be")])
def test_bad_profiles(tmp_path, text, needle):
    path = tmp_path / "dev.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=needle):
        load_profile(path)


def _r(median, canary=None):
    return Round(median, median * 1.1, 0.01, 50, canary)


def test_densest_group_is_the_mode_not_the_minimum():
    vals = [0.70, 1.00, 1.01, 1.005, 1.30, 1.28]  # one lucky round, three that agree, two in a burst
    group, spread = densest_group(vals, 3)
    assert sorted(group) == [1, 2, 3] and spread == pytest.approx(0.01)


def test_estimate_waits_for_agreement_and_ignores_disturbed_rounds():
    p = TimingProtocol()
    assert estimate([_r(1.0), _r(1.2)], p) is None
    assert estimate([_r(1.0), _r(1.2), _r(1.5)], p) is None  # three rounds, but they do not agree
    t = estimate([_r(1.0), _r(1.2), _r(1.01), _r(0.995)], p)
    assert t.converged and t.p50_ms == pytest.approx(1.0) and t.rounds_replaced == 1
    # with a canary reference of 0.1 ms, rounds whose canary ran at 0.2 ms are disturbed and set aside
    rounds = [_r(1.3, 0.2), _r(1.31, 0.2), _r(1.29, 0.2), _r(1.0, 0.1), _r(1.01, 0.1)]
    assert estimate(rounds, p, canary_ref_ms=0.1) is None
    t = estimate([*rounds, _r(1.005, 0.1)], p, canary_ref_ms=0.1)
    assert t.p50_ms == pytest.approx(1.005) and t.rounds_replaced == 3


def test_estimate_normalises_moderate_load_and_gives_up_honestly():
    assert normalized(_r(1.05, 0.105), 0.1)[0] == pytest.approx(1.0)
    p = TimingProtocol()
    t = estimate([_r(1.0), _r(1.5), _r(2.0)], p, final=True)
    assert not t.converged and t.spread == pytest.approx(1.0)


def test_summarize_round_robust_cv():
    r = summarize_round([0.001] * 90 + [0.1] * 2 + [0.0011] * 8)
    assert r.median_ms == pytest.approx(1.0) and r.cv < 0.05  # rare hiccups do not blow up the CV
    assert summarize_round([0.001, 0.002, 0.003, 0.004]).cv > 0.3


class _Bursty:
    """Spin-wait runners on a shared clock with simulated bursts of outside load: inside a burst
    every call takes `factor` times longer (the canary's too), as on a host whose neighbour wakes."""

    def __init__(self, factor: float = 1.5, period_s: float = 0.25, seed: int = 0):
        rng = random.Random(seed)
        self.t0, self.factor = time.perf_counter(), factor
        self.windows = [rng.random() < 0.5 for _ in range(4000)]  # ~half the time in a burst
        self.period = period_s

    def slow(self) -> float:
        i = int((time.perf_counter() - self.t0) / self.period)
        return self.factor if self.windows[i % len(self.windows)] else 1.0

    def runner(self, us: float):
        def run():
            end = time.perf_counter() + us * 1e-6 * self.slow()
            while time.perf_counter() < end:
                pass
        return run


def test_interleaved_rounds_recover_the_undisturbed_figure_under_bursts():
    load = _Bursty(period_s=0.06)
    proto = TimingProtocol(round_s=0.01)
    items = {f"m{us}": (lambda us=us: load.runner(us)) for us in (60, 90, 120, 180, 250, 400)}
    canary = Canary(load.runner(40), proto)
    got = measure_many(items, proto, canary, random.Random(0), progress=False)
    for key, t in got.items():
        true = int(key[1:]) / 1e3
        assert t.p50_ms == pytest.approx(true, rel=0.06), (key, t)
    assert sum(t.rounds_replaced for t in got.values()) > 0  # the bursts were seen and set aside


def test_measure_stable_of_one_model():
    t = measure_stable(lambda: time.sleep(0.001), TimingProtocol(round_s=0.01))
    assert t.rounds_used >= 3 and 0.9 < t.p50_ms < 5 and t.p50_ms <= t.p90_ms


def test_disturbance_workers_end_with_a_killed_parent():
    """A benchmark killed with SIGKILL never runs __exit__: its load workers must not spin forever."""
    import os
    import signal
    import subprocess
    import sys

    code = ("import time; from profiler.disturb import Disturbance, BurstPattern; "
            "d = Disturbance(1, pattern=BurstPattern((0.05, 0.1), (0.05, 0.1))).__enter__(); "
            "print(d._procs[0].pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        try:  # reap it if it became our zombie (it is re-parented to init, which reaps it)
            os.waitpid(worker, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the load worker outlived its killed parent")
