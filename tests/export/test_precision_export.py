"""An int8 profile exports an int8 model whose accuracy is measured; checks are precision-aware; a
precision a target cannot run is exit 2; a modelled latency is never called measured."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from export import CheckFailed, Exporter, export_subnet, latency_figure
from export import _verify_cache as vcache
from export.checks import BOUNDS, precision_checks
from export.device_checks import device_checks
from export.report import latency_section
from hwofa.common import UserError
from profiler import Timing, load_profile
from profiler.backends import target_class
from profiler.precision import quantized_ops
from supernet import load_supernet

openvino_ok, openvino_why = target_class("openvino")(load_profile("cpu-openvino")).available()
QUANT_KEYS = {"method", "calibration_images", "top1_fp32", "top1", "top1_drop", "agreement"}


@pytest.fixture(scope="module")
def arch(tiny_run):
    net, _ = load_supernet(tiny_run)
    return net.space.uniform(12, 3, 3, 1)


@pytest.fixture(scope="module")
def int8_bundle(tiny_run, arch, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "bundle"
    res = export_subnet(arch, "cpu-onnxruntime-int8", out, supernet_run=tiny_run, budget_ms=100.0)
    return out, res


def test_int8_bundle_is_int8_and_its_accuracy_measured(int8_bundle):
    out, res = int8_bundle
    assert res.written and res.passed
    ops = quantized_ops((out / "model.onnx").read_bytes())
    assert ops["QuantizeLinear"] > 0 and ops["int8_initializers"] > 0
    report = json.loads((out / "model.json").read_text())
    assert report["precision"] == "int8" and report["runtime"]["precision"] == "int8"
    quant = report["quantization"]
    assert QUANT_KEYS <= set(quant) and quant["calibration_images"] == 512 and quant["calibration_split"] == "train"
    assert quant["top1_fp32"] == report["accuracy"]["top1_onnx"] and quant["top1"] == report["accuracy"]["top1"]
    assert quant["top1_drop"] == pytest.approx(quant["top1_fp32"] - quant["top1"])
    assert 0.95 <= quant["agreement"] <= 1
    names = {c["name"] for c in report["checks"]}
    assert {"int8_model", "top1_drop_int8_onnxruntime", "agreement_int8_onnxruntime", "parity_onnxruntime"} <= names
    assert report["latency_ms"]["source"].startswith("measured: onnxruntime ")
    assert latency_figure(report) == ("measured p50", report["latency_ms"]["measured_p50"])


def test_int8_cached_verification_gives_the_same_model(int8_bundle, tiny_run, arch, tmp_path):
    out, first = int8_bundle
    again = export_subnet(arch, "cpu-onnxruntime-int8", tmp_path / "b", supernet_run=tiny_run)
    assert again.report["verification"]["cached"] is True
    assert (tmp_path / "b" / "model.onnx").read_bytes() == (out / "model.onnx").read_bytes()
    assert again.report["quantization"] == first.report["quantization"]
    fp32 = Exporter("cpu-onnxruntime", tiny_run).candidate(arch, calibrate=False)
    assert fp32.key != again.report["verification"]["key"]  # precision is part of the cache key


def test_broken_int8_fails_its_precision_checks_not_parity(tiny_run, arch, tmp_path, monkeypatch):
    """Calibration ranges 1000x too narrow saturate every activation: a verification failure (exit 1)
    naming the int8 checks, with the fp32 parity passing; nothing written."""
    calibration_inputs = Exporter.calibration_inputs
    monkeypatch.setattr(Exporter, "calibration_inputs", lambda self, r: calibration_inputs(self, r) * 1e-3)
    monkeypatch.setattr(vcache, "load", lambda key, inputs: None)  # not served from the cache
    with pytest.raises(CheckFailed, match="int8 on onnxruntime") as err:
        export_subnet(arch, "cpu-onnxruntime-int8", tmp_path / "out", supernet_run=tiny_run)
    assert "parity" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_precision_checks_bounds():
    good = precision_checks("int8", "onnxruntime", 0.90, 0.895, 0.985, 10000)
    assert all(c.ok and c.fatal for c in good)
    bad = precision_checks("int8", "onnxruntime", 0.90, 0.80, 0.70, 10000)
    assert [c.ok for c in bad] == [False, False] and "drop 10.00 points > 1.50" in bad[0].text
    assert BOUNDS["fp16"].max_top1_drop < BOUNDS["bf16"].max_top1_drop < BOUNDS["int8"].max_top1_drop
    assert not precision_checks("fp16", "openvino", 0.90, 0.895, 0.999, 10000)[0].ok  # 0.5 points: too much for fp16


def test_fp16_on_onnxruntime_is_a_user_error(tiny_run, arch, tmp_path):
    profile = replace(load_profile("cpu-onnxruntime"), precision="fp16")
    with pytest.raises(UserError, match="no fp16 kernels"):
        export_subnet(arch, profile, tmp_path / "out", supernet_run=tiny_run)
    assert not (tmp_path / "out").exists()


def test_a_target_without_a_runner_is_said_not_skipped():
    target = SimpleNamespace(name="zigzag", kind="cost-model", runner=lambda model: None)
    v = SimpleNamespace(deployed=SimpleNamespace(precision="int8", model_bytes=b""))
    checks, facts = device_checks(target, v, None, 12, [0.0], [1.0])
    assert facts == {} and len(checks) == 1
    c = checks[0]
    assert c.informational and c.ok and not c.fatal and "runs no models" in c.text and c.line().startswith("·")


def test_modelled_latency_is_never_called_measured():
    target = SimpleNamespace(source="modelled", name="zigzag", label=lambda: "modelled: zigzag-dse 3.9.1")
    timing = Timing(p50_ms=0.25, p90_ms=0.25, cv=0.0, n=1)
    lat = latency_section(target, timing, 1.0, {}, {"cycles": 1000})
    assert lat["source"] == "modelled: zigzag-dse 3.9.1" and lat["modelled"] == 0.25
    assert lat["detail"] == {"cycles": 1000}
    assert not any(k.startswith("measured") for k in lat)
    assert latency_figure({"latency_ms": lat}) == ("modelled", 0.25)


@pytest.mark.openvino
@pytest.mark.skipif(not openvino_ok, reason=f"OpenVINO absent: {openvino_why}")
def test_int8_on_openvino_checks_the_device_runtime(tiny_run, arch, tmp_path):
    res = export_subnet(arch, "cpu-openvino-int8", tmp_path / "out", supernet_run=tiny_run)
    report = res.report
    device = report["quantization"]["device"]
    assert device["runtime"].startswith("openvino ") and device["agreement"] >= BOUNDS["int8"].min_agreement
    names = {c["name"] for c in report["checks"]}
    assert {"top1_drop_int8_openvino", "agreement_int8_openvino"} <= names and res.passed
    assert np.isfinite(device["top1"])


@pytest.mark.openvino
@pytest.mark.skipif(not openvino_ok, reason=f"OpenVINO absent: {openvino_why}")
def test_bf16_on_openvino_is_measured_on_the_device(tiny_run, arch, tmp_path):
    import openvino as ov

    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no bf16 in OpenVINO")
    profile = replace(load_profile("cpu-openvino"), precision="bf16")
    res = export_subnet(arch, profile, tmp_path / "out", supernet_run=tiny_run)
    quant = res.report["quantization"]
    assert res.report["precision"] == "bf16" and QUANT_KEYS <= set(quant) and quant["calibration_images"] == 0
    assert quant["runtime"].startswith("openvino ") and quant["top1"] == res.report["accuracy"]["top1"]
    assert {"top1_drop_bf16_openvino", "agreement_bf16_openvino"} <= {c.name for c in res.checks}
