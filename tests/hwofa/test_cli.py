"""The CLI contract: exit codes, one-paragraph errors, nothing overwritten, the main job end to end."""

import json
import subprocess
import sys

import pytest

from hwofa.cli import main


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code, err, needle):
    assert code == 2, err
    assert needle in err
    assert "Traceback" not in err and err.count("\n") <= 2


def test_devices_lists_profiles_and_why_not(capsys):
    code, out, _ = run_cli(capsys, "devices")
    assert code == 0
    assert "cpu-onnxruntime" in out and "runs here" in out
    assert "gpu-tensorrt" in out


def test_space_prints_json(capsys, tiny_run):
    code, out, _ = run_cli(capsys, "space", "--supernet", tiny_run)
    assert code == 0 and json.loads(out)["num_stages"] == 2


def test_unknown_device(capsys, tiny_run):
    code, _, err = run_cli(capsys, "profile", "--device", "cpu-onnxrt", "--supernet", tiny_run)
    assert_user_error(code, err, "Did you mean cpu-onnxruntime")


@pytest.mark.parametrize("budget", ["-1", "0", "nan", "fast"])
def test_bad_budget(capsys, budget):
    with pytest.raises(SystemExit) as exc:
        main(["search", "--device", "cpu-onnxruntime", "--latency-ms", budget, "--out", "x.json"])
    assert exc.value.code == 2


def test_missing_and_malformed_files(capsys, tiny_run, tmp_path):
    code, _, err = run_cli(capsys, "export", "--arch", tmp_path / "nope.json", "--device", "cpu-onnxruntime",
                           "--out", tmp_path / "o", "--supernet", tiny_run)
    assert_user_error(code, err, "does not exist")
    bad = tmp_path / "arch.json"
    bad.write_text('{"resolution": 12, "stages": [[{"kernel_size": 4, "expand_ratio": 3}]]}')
    code, _, err = run_cli(capsys, "export", "--arch", bad, "--device", "cpu-onnxruntime", "--out", tmp_path / "o",
                           "--supernet", tiny_run)
    assert_user_error(code, err, "stage 0 block 0 has kernel_size 4")
    truncated = tmp_path / "search.json"
    truncated.write_text('{"format": "hwofa-search/1", "devi')
    code, _, err = run_cli(capsys, "export", "--search", truncated, "--device", "cpu-onnxruntime",
                           "--out", tmp_path / "o", "--supernet", tiny_run)
    assert_user_error(code, err, "not valid JSON")
    code, _, err = run_cli(capsys, "space", "--supernet", tmp_path)
    assert_user_error(code, err, "holds no supernet.json")
    assert not (tmp_path / "o").exists()


def test_valid_json_with_missing_or_mistyped_fields(capsys, tiny_run, tmp_path):
    search = tmp_path / "search.json"
    search.write_text(json.dumps({"format": "hwofa-search/1", "budget_ms": 1.0, "inputs": {},
                                  "devices": {"cpu-onnxruntime": {"predicted_latency_ms": 0.1}}}))
    code, _, err = run_cli(capsys, "export", "--search", search, "--device", "cpu-onnxruntime",
                           "--out", tmp_path / "o", "--supernet", tiny_run)
    assert_user_error(code, err, "another supernet")  # inputs name no supernet: refused before the entry
    sn = json.loads((tiny_run / "supernet.json").read_text())
    search.write_text(json.dumps({"format": "hwofa-search/1", "budget_ms": "1", "inputs": {}, "devices": {}}))
    code, _, err = run_cli(capsys, "export", "--search", search, "--device", "cpu-onnxruntime",
                           "--out", tmp_path / "o", "--supernet", tiny_run)
    assert_user_error(code, err, "field 'budget_ms' should be int/float")
    broken = tmp_path / "run"
    broken.mkdir()
    (broken / "supernet.safetensors").write_bytes((tiny_run / "supernet.safetensors").read_bytes())
    (broken / "supernet.json").write_text(json.dumps({k: v for k, v in sn.items() if k != "dataset"}))
    code, _, err = run_cli(capsys, "space", "--supernet", broken)
    assert_user_error(code, err, "lacks the field 'dataset'")
    lut = tmp_path / "lut.json"
    lut.write_text(json.dumps({"format": "hwofa-lut/1", "header": [], "entries": {}}))
    code, _, err = run_cli(capsys, "profile", "--device", "cpu-onnxruntime", "--supernet", tiny_run, "--lut", lut)
    assert_user_error(code, err, "field 'header' should be dict")
    assert not (tmp_path / "o").exists()
    code, _, err = run_cli(capsys, "search", "--device", "cpu-onnxruntime", "--latency-ms", "1", "--out", tmp_path,
                           "--supernet", tiny_run)
    assert_user_error(code, err, "is a folder")
    code, _, err = run_cli(capsys, "run", "--device", "cpu-onnxruntime", "--latency-ms", "1", "--out", lut,
                           "--supernet", tiny_run)
    assert_user_error(code, err, "is a file")


def test_corrupt_lut_is_not_overwritten(capsys, tiny_run, tmp_path):
    lut = tmp_path / "lut.json"
    lut.write_text('{"format": "hwofa-lut/1", "header": {')
    code, _, err = run_cli(capsys, "profile", "--device", "cpu-onnxruntime", "--supernet", tiny_run, "--lut", lut)
    assert_user_error(code, err, "not valid JSON")
    assert lut.read_text() == '{"format": "hwofa-lut/1", "header": {'


def test_rebuild_never_overwrites_another_devices_lut(capsys, tiny_run, tmp_path):
    sn = json.loads((tiny_run / "supernet.json").read_text())
    lut = tmp_path / "lut.json"
    text = json.dumps({"format": "hwofa-lut/1", "header": {"device": "cpu-openvino", "space": sn["space"]},
                       "entries": {}, "calibration": None})
    lut.write_text(text)
    code, _, err = run_cli(capsys, "profile", "--device", "cpu-onnxruntime", "--supernet", tiny_run, "--lut", lut,
                           "--rebuild")
    assert_user_error(code, err, "will not overwrite")
    assert lut.read_text() == text


def test_run_end_to_end_then_cached(capsys, tiny_run_with_predictor, tmp_path):
    run = tiny_run_with_predictor
    code, out, err = run_cli(capsys, "profile", "--device", "cpu-onnxruntime", "--supernet", run)
    assert code == 0, err
    assert "within ±10 %" in out
    code, _, err = run_cli(capsys, "search", "--device", "cpu-onnxruntime", "--latency-ms", "1e-6",
                           "--supernet", run, "--out", tmp_path / "s.json")
    assert_user_error(code, err, "smallest latency reachable")
    assert not (tmp_path / "s.json").exists()

    from profiler import LatencyTable, default_lut_path
    from supernet import load_supernet

    net, _ = load_supernet(run)
    table = LatencyTable.load(default_lut_path("cpu-onnxruntime", net.space))
    lo, hi = table.min_latency()[0], table.predict(net.space.largest())
    budget = f"{lo + 0.6 * (hi - lo) + 0.05:.4f}"
    out_dir = tmp_path / "bundle"
    code, out, err = run_cli(capsys, "run", "--device", "cpu-onnxruntime", "--latency-ms", budget,
                             "--out", out_dir, "--supernet", run)
    assert code == 0, err + out
    assert "LUT cached" in out
    report = json.loads((out_dir / "model.json").read_text())
    assert report["latency_ms"]["measured_p50"] <= float(budget)
    assert report["latency_ms"]["predicted"] <= float(budget)
    assert {"top1_torch", "top1_onnx"} <= set(report["accuracy"])
    acc = report["accuracy"]  # the prediction with its predictor's residual interval
    interval, residuals = acc["predicted_val_top1_interval"], acc["predicted_error"]["interval"]
    assert interval["low"] == pytest.approx(max(0, acc["predicted_val_top1"] + residuals["low"]))
    assert interval["high"] == pytest.approx(min(1, acc["predicted_val_top1"] + residuals["high"]))
    assert interval["coverage"] == 0.9 and 0 <= interval["measured_coverage"] <= 1
    assert interval["basis"] == "random subnets"  # the tiny predictor has no errors measured at picks
    for name in ("model.onnx", "pareto.png", "search.json"):
        assert (out_dir / name).is_file()
    assert report["passed"] is True and sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.json", "model.onnx", "pareto.png", "search.json"]
    search = json.loads((out_dir / "search.json").read_text())
    entry = search["devices"]["cpu-onnxruntime"]
    assert entry["arch"] == report["arch"] and entry["budget_ms"] == float(budget) and entry["front"]["points"]
    measured = [f for f in entry["finalists"] if f["meets_budget"]]
    assert measured and all(f["measured_p50_ms"] <= float(budget) for f in measured)
    assert report["finalists"]["finalists"] == entry["finalists"]

    code, out, err = run_cli(capsys, "export", "--search", out_dir / "search.json", "--device", "cpu-onnxruntime",
                             "--out", tmp_path / "again", "--supernet", run)
    assert code == 0, err
    again = json.loads((tmp_path / "again" / "model.json").read_text())
    assert again["arch"] == report["arch"]
    assert again["accuracy"]["predicted_val_top1_interval"] == interval  # export --search: the same interval
    assert again["verification"] == {"cached": True, "key": report["verification"]["key"]}
    assert "reused from the cache" in out

    # a budget above the largest subnet's predicted latency constrains nothing: the summary says so
    code, out, err = run_cli(capsys, "run", "--device", "cpu-onnxruntime", "--latency-ms", "1e9",
                             "--out", tmp_path / "big", "--supernet", run)
    assert code == 0, err
    assert "above the largest subnet's predicted latency" in out


def test_console_script_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hwofa", "search", "--device", "nope", "--latency-ms", "1",
                           "--out", str(tmp_path / "s.json")], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown device 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_train_resume_and_predictor_commands(capsys, tiny_recipe_path, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "train", "--dataset", "fashion-mnist", "--recipe", tiny_recipe_path,
                                "--out", out)
    assert code == 0, err
    assert "largest" in stdout and (out / "supernet.safetensors").is_file()
    code, _, err = run_cli(capsys, "train", "--dataset", "fashion-mnist", "--recipe", tiny_recipe_path, "--out", out)
    assert_user_error(code, err, "--resume")
    code, _, err = run_cli(capsys, "train", "--dataset", "fashion-mnist", "--recipe", tiny_recipe_path, "--out", out,
                           "--resume")
    assert code == 0, err
    code, stdout, err = run_cli(capsys, "predictor", "--supernet", out, "--subnets", "12")
    assert code == 0, err
    assert "kendall_tau" in stdout and (out / "accuracy_predictor.safetensors").is_file()
    code, _, err = run_cli(capsys, "train", "--dataset", "cifar10", "--out", tmp_path / "c")
    assert_user_error(code, err, "--data-dir")
