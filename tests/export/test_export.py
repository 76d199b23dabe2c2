import json

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from export import export_subnet, load_arch
from hwofa.common import UserError
from supernet import SearchSpace, load_supernet


@pytest.fixture(scope="module")
def bundle(tiny_run, tmp_path_factory):
    net, _ = load_supernet(tiny_run)
    arch = net.space.uniform(12, 5, 3, 2)
    out = tmp_path_factory.mktemp("bundle")
    res = export_subnet(arch, "cpu-onnxruntime", out, supernet_run=tiny_run, budget_ms=100.0)
    assert res.written
    return out, res.report, res.checks, arch


def test_bundle_files_and_checklist(bundle):
    out, report, checks, arch = bundle
    assert (out / "model.onnx").stat().st_size > 0
    on_disk = json.loads((out / "model.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    for key in ("device", "arch", "latency_ms", "accuracy", "parity", "runtime", "preprocess", "onnx"):
        assert key in on_disk
    assert on_disk["arch"] == arch.to_dict()
    assert on_disk["parity"]["max_abs_diff"] <= 1e-4
    assert on_disk["accuracy"]["images"] == 10000 and on_disk["accuracy"]["split"] == "test"
    assert abs(on_disk["accuracy"]["top1_torch"] - on_disk["accuracy"]["top1_onnx"]) <= 1e-3
    assert on_disk["latency_ms"]["measured_p50"] > 0 and on_disk["onnx"]["opset"] >= 17
    assert all(c.ok for c in checks) and any("parity" in c.text for c in checks)
    assert on_disk["passed"] is True
    assert {c["name"]: c["fatal"] for c in on_disk["checks"]}["latency_budget"] is False
    assert all(set(c) == {"name", "ok", "fatal", "text", "informational"} for c in on_disk["checks"])
    assert on_disk["precision"] == "fp32" and on_disk["quantization"] is None
    assert on_disk["accuracy"]["top1"] == on_disk["accuracy"]["top1_onnx"]
    assert on_disk["latency_ms"]["source"].startswith("measured: onnxruntime ")
    assert set(on_disk["verification"]) == {"cached", "key"}


def test_model_runs_from_preprocess_block_alone(bundle, fmnist, tiny_run):
    """A user without hwofa: PIL + numpy + onnxruntime, following model.json's preprocess."""
    from supernet import calibrated_subnet, predict_logits

    out, report, _, arch = bundle
    pp = report["preprocess"]
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    xs = []
    for img in fmnist.test_x[:64, 0].numpy():
        x = np.asarray(img, np.float32) * pp["scale"]
        x = np.asarray(Image.fromarray(x, mode="F").resize((pp["resolution"],) * 2, Image.BILINEAR))
        xs.append((x - pp["mean"][0]) / pp["std"][0])
    logits = sess.run(None, {"input": np.stack(xs)[:, None].astype(np.float32)})[0]
    net, meta = load_supernet(tiny_run)
    ref = predict_logits(calibrated_subnet(net, meta, fmnist, arch), fmnist.test_x[:64], pp["resolution"],
                         pp["mean"], pp["std"]).numpy()
    assert (logits.argmax(1) == ref.argmax(1)).mean() >= 0.95
    assert np.abs(logits - ref).max() < 0.05


def test_dynamic_batch(bundle):
    out, report, _, arch = bundle
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 7):
        x = np.zeros((n, 1, arch.resolution, arch.resolution), np.float32)
        assert sess.run(None, {"input": x})[0].shape == (n, 10)


def test_out_of_space_arch_is_refused_and_nothing_written(tiny_run, tmp_path):
    arch = SearchSpace().largest()  # 5 stages: not the tiny space
    with pytest.raises(UserError, match="resolution 28 is not in the space's resolutions"):
        export_subnet(arch, "cpu-onnxruntime", tmp_path / "out", supernet_run=tiny_run)
    assert not (tmp_path / "out").exists()


def test_load_arch_errors(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"resolution": 12, "stages": [[{"kernel_size": 3')
    with pytest.raises(UserError, match="not valid JSON"):
        load_arch(p)
    with pytest.raises(UserError, match="does not exist"):
        load_arch(tmp_path / "missing.json")
    p.write_text("[1, 2]")
    with pytest.raises(UserError, match="ArchSpec"):
        load_arch(p)
