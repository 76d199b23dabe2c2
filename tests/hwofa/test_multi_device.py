"""Several devices in one run on the tiny space: per-device budgets refused early and naming the
device, one bundle per device, finalists measured, the cross-device report."""

from __future__ import annotations

import json
import time

import pytest

from hwofa.cli import main
from hwofa.common import UserError


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def user_error(capsys, argv, needle, seconds=8):
    t0 = time.time()
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, err + out
    assert needle in err, err
    assert "Traceback" not in err and err.count("\n") <= 1, err
    assert time.time() - t0 < seconds, "refused only after slow work"


@pytest.fixture(scope="module")
def second_device() -> str:
    """A second CPU runtime. (The FPGA-style cost model needs an int8 export, which the tiny supernet, trained
    for a few steps, does not always pass: its logits are too close for the int8 agreement check.)"""
    pytest.importorskip("openvino", reason="the second device of this test is cpu-openvino")
    return "cpu-openvino"


@pytest.fixture(scope="module")
def ranges(tiny_run_with_predictor, second_device) -> dict[str, tuple[float, float]]:
    """Both devices' LUTs (built once, then cached) and their predicted latency ranges."""
    from hwofa import pipeline
    from supernet import load_supernet

    net, _ = load_supernet(tiny_run_with_predictor)
    out = {}
    for device in ("cpu-onnxruntime", second_device):
        table = pipeline.profile(device, tiny_run_with_predictor, progress=False)[0]
        out[device] = (table.min_latency()[0], table.predict(net.space.largest()))
    return out


@pytest.mark.parametrize("device,needle", [
    ("cpu-openvino=fast", "the budget of 'cpu-openvino' ('fast') is not a number"),
    ("cpu-openvino=0", "the budget of 'cpu-openvino' must be a positive"),
    ("cpu-openvino", "device 'cpu-openvino' has no latency budget"),
    ("cpu-onnxruntime=2", "device 'cpu-onnxruntime' is named twice"),
    ("cpu-onnxrt=1", "unknown device 'cpu-onnxrt'"),
])
@pytest.mark.parametrize("command", ["run", "search"])
def test_bad_budget_for_one_device_names_it_before_slow_work(capsys, tiny_run, tmp_path, command, device, needle):
    out = tmp_path / ("o" if command == "run" else "s.json")
    user_error(capsys, [command, "--device", "cpu-onnxruntime=0.3", "--device", device, "--supernet", tiny_run,
                        "--out", out], needle)
    assert not out.exists()


def test_finalists_and_fronts_flags_are_checked(capsys, tiny_run, tmp_path):
    user_error(capsys, ["run", "--device", "cpu-onnxruntime=0.3", "--finalists", "0", "--supernet", tiny_run,
                        "--out", tmp_path / "o"], "--finalists 0")
    bad = tmp_path / "list.json"
    bad.write_text("[1]")
    user_error(capsys, ["run", "--device", "cpu-onnxruntime=0.3", "--fronts", bad, "--supernet", tiny_run,
                        "--out", tmp_path / "o"], "--fronts: '")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("which", [0, 1])
def test_infeasible_budget_for_one_device_names_it_before_any_lut_is_built(capsys, tmp_path, monkeypatch, ranges,
                                                                           tiny_run_with_predictor, which):
    import hwofa.searching

    def no_build(*a, **k):
        raise AssertionError("a LUT was measured before the cached tables' budgets were checked")

    monkeypatch.setattr(hwofa.searching, "device_table", no_build)
    devices = list(ranges)
    argv = []
    for i, d in enumerate(devices):
        argv += ["--device", f"{d}={ranges[d][0] * 0.5:.6f}" if i == which else f"{d}={ranges[d][1]:.4f}"]
    # a device whose table is not cached yet comes first: its budget is checked once the cached ones are
    user_error(capsys, ["run", "--device", "cpu-openvino-int8=1", *argv, "--supernet", tiny_run_with_predictor,
                        "--out", tmp_path / "o"],
               f"infeasible budget for '{devices[which]}'", seconds=30)
    assert not (tmp_path / "o").exists()


def test_two_devices_one_run(capsys, tmp_path, monkeypatch, ranges, tiny_run_with_predictor, second_device):
    import supernet.checkpoint

    loads = []
    real_load = supernet.checkpoint.load_tensors
    monkeypatch.setattr(supernet.checkpoint, "load_tensors", lambda p, what, *a: loads.append(what) or
                        real_load(p, what, *a))
    budgets = {d: lo + 0.6 * (hi - lo) + 0.05 for d, (lo, hi) in ranges.items()}
    out = tmp_path / "out"
    devices = [f"{d}={b:.4f}" for d, b in budgets.items()]
    code, stdout, err = run_cli(capsys, "run", "--device", devices[0], "--device", devices[1],
                                "--supernet", tiny_run_with_predictor, "--out", out)
    assert code == 0, err + stdout
    assert loads.count("supernet") == 1  # loaded (and its weights hashed) once for the whole run
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["cpu-onnxruntime", second_device, "report.json", "report.md", "fronts.png", "search.json"])
    search = json.loads((out / "search.json").read_text())
    report = json.loads((out / "report.json").read_text())
    for device, budget in budgets.items():
        budget = float(f"{budget:.4f}")
        bundle = json.loads((out / device / "model.json").read_text())
        assert {p.name for p in (out / device).iterdir()} == {"model.onnx", "model.json", "pareto.png"}
        lat = bundle["latency_ms"]
        assert bundle["passed"] is True and lat["budget"] == budget
        assert lat.get("measured_p50", lat.get("modelled")) <= budget  # the chosen subnet meets it as measured
        entry = search["devices"][device]
        assert entry["budget_ms"] == budget and entry["arch"] == bundle["arch"]
        assert entry["front"]["points"] and entry["finalists_measured"] is True and len(entry["finalists"]) >= 1
        assert all(("measured_p50_ms" in f) or ("modelled_ms" in f) for f in entry["finalists"])
        assert report["subnets"][device]["arch"] == bundle["arch"]
        assert set(report["matrix"][device]) == set(budgets)
        assert report["matrix"][device][device]["budget_ratio"] <= 1
    assert (out / "fronts.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "report.md").read_text()
    assert "chosen for ↓ · run on →" in md and "chosen for ↓ · run on →" in stdout
    assert f"bundles in {out}/<device>/" in stdout

    # the run's search.json serves `export --search` for either device, verification from the cache
    code, stdout, err = run_cli(capsys, "export", "--search", out / "search.json", "--device", second_device,
                                "--out", tmp_path / "again", "--supernet", tiny_run_with_predictor)
    again = json.loads((tmp_path / "again" / "model.json").read_text())
    assert again["arch"] == search["devices"][second_device]["arch"] and again["verification"]["cached"] is True
    failed = [c["name"] for c in again["checks"] if not c["ok"]]
    assert code == (1 if failed else 0) and failed in ([], ["latency_budget"]), err + stdout  # measured afresh: noise

    # a later budget is answered from the fronts the run kept, without searching again
    hi = ranges["cpu-onnxruntime"][1]
    code, stdout, err = run_cli(capsys, "search", "--device", f"cpu-onnxruntime={hi + 0.05:.4f}", "--fronts",
                                out / "search.json", "--supernet", tiny_run_with_predictor,
                                "--out", tmp_path / "s.json")
    assert code == 0, err + stdout
    later = json.loads((tmp_path / "s.json").read_text())["devices"]["cpu-onnxruntime"]
    assert later["front_from"] == str(out / "search.json") and later["seconds"]["search"] == 0
    assert later["front"]["points"] == search["devices"]["cpu-onnxruntime"]["front"]["points"]
    assert f"kept in {out / 'search.json'}" in stdout


def test_search_says_so_where_a_device_does_not_run_here(capsys, tmp_path, monkeypatch, ranges,
                                                         tiny_run_with_predictor, second_device):
    import hwofa.searching
    from profiler import get_target

    def not_here(profile, require=True):
        if profile.name == second_device:
            raise UserError(f"device '{second_device}' cannot run on this machine: the test says so.")
        return get_target(profile, require)

    monkeypatch.setattr(hwofa.searching, "get_target", not_here)
    code, stdout, err = run_cli(capsys, "search", "--device", f"{second_device}={ranges[second_device][1]:.4f}",
                                "--supernet", tiny_run_with_predictor, "--out", tmp_path / "s.json")
    assert code == 0, err + stdout
    assert "finalists NOT measured" in stdout and "the test says so" in stdout
    entry = json.loads((tmp_path / "s.json").read_text())["devices"][second_device]
    assert entry["finalists_measured"] is False and "chosen from predictions alone" in entry["note"]
    assert not any("measured_p50_ms" in f for f in entry["finalists"])
