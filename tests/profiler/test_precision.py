"""Precision is honoured or refused: int8 models really are int8 and run; fp16 where it cannot run is exit 2."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from hwofa.common import UserError
from profiler import get_target, load_profile, to_onnx
from profiler.backends import target_class
from profiler.build import module_for
from profiler.lut import all_entries
from profiler.precision import QuantSettings, quantized_ops, target_precision, to_precision
from supernet import SearchSpace

openvino_ok, openvino_why = target_class("openvino")(load_profile("cpu-openvino")).available()


def _tiny_space() -> SearchSpace:
    from conftest import TINY_SPACE

    return SearchSpace.from_dict(TINY_SPACE)


def _entry_models() -> list[tuple[str, bytes, tuple[int, ...]]]:
    """One module of each kind in the tiny space: overhead (a bare ReLU), stem, every stage's blocks, head."""
    space, seen, out = _tiny_space(), set(), []
    for spec in all_entries(space).values():
        kind = (spec["kind"], spec.get("stage"), spec.get("first"))
        if kind not in seen:
            seen.add(kind)
            torch.manual_seed(0)
            module, shape = module_for(space, spec)
            out.append((str(kind), to_onnx(module, shape), shape))
    return out


def _calibration(shape: tuple[int, ...], n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, *shape[1:])).astype(np.float32)


def test_int8_every_entry_kind_quantizes_deterministically_and_runs_on_onnxruntime():
    target = get_target(load_profile("cpu-onnxruntime-int8"))
    for kind, model, shape in _entry_models():
        q, info = target_precision(target, model, _calibration(shape))
        assert q == target_precision(target, model, _calibration(shape))[0], f"{kind}: not deterministic"
        onnx.checker.check_model(onnx.load_from_string(q))
        assert info["calibration_images"] == 4 and info["activations"] == "uint8"
        ops = quantized_ops(q)
        if "overhead" not in kind:  # a bare ReLU has nothing to quantize; everything else must be int8
            assert ops["QuantizeLinear"] > 0 and ops["int8_initializers"] > 0, f"{kind}: {ops}"
        out = target.runner(q)(_calibration(shape, 1))[0]
        assert np.isfinite(out).all()


def test_int8_close_to_fp32_and_weights_per_channel():
    _, model, shape = next(m for m in _entry_models() if "block" in m[0])
    x = _calibration(shape, 16)
    q, _ = to_precision(model, "int8", x)
    graph = onnx.load_from_string(q).graph
    weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    scales = {t.name: t for t in graph.initializer}
    dq = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in {w.name for w in weights}]
    assert dq and all(len(scales[n.input[1]].dims) == 1 and scales[n.input[1]].dims[0] > 1 for n in dq)
    run = get_target(load_profile("cpu-onnxruntime")).runner
    ref, got = run(model)(x[:1])[0], run(q)(x[:1])[0]
    assert np.abs(ref - got).max() < 0.1 * np.abs(ref).max()


def test_fp32_unchanged_and_bad_calibration_refused():
    _, model, shape = _entry_models()[1]
    assert to_precision(model, "fp32", None)[0] == model
    with pytest.raises(ValueError, match="calibration"):
        to_precision(model, "int8", None)
    with pytest.raises(ValueError, match="do not fit"):
        to_precision(model, "int8", np.zeros((2, 3, 5, 5), np.float32))
    with pytest.raises(UserError):
        QuantSettings(activations="int4")


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_onnxruntime_refuses_reduced_float_precision(precision):
    profile = replace(load_profile("cpu-onnxruntime"), precision=precision)
    with pytest.raises(UserError, match=f"no {precision} kernels"):
        get_target(profile)


@pytest.mark.openvino
@pytest.mark.skipif(not openvino_ok, reason=f"OpenVINO absent: {openvino_why}")
def test_openvino_runs_int8_in_int8():
    import openvino as ov

    _, model, shape = next(m for m in _entry_models() if "block" in m[0])
    target = get_target(load_profile("cpu-openvino-int8"))
    q, _ = target_precision(target, model, _calibration(shape))
    assert np.isfinite(target.runner(q)(_calibration(shape, 1))[0]).all()
    core = ov.Core()
    compiled = core.compile_model(core.read_model(q, b""), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    convs = [op.get_rt_info()["runtimePrecision"].astype(str) for op in compiled.get_runtime_model().get_ordered_ops()
             if op.get_rt_info()["layerType"].astype(str) == "Convolution"]
    assert convs and all(p in ("u8", "i8") for p in convs), convs


@pytest.mark.openvino
@pytest.mark.skipif(not openvino_ok, reason=f"OpenVINO absent: {openvino_why}")
def test_openvino_reduced_precision_follows_the_cpu_capabilities():
    import openvino as ov

    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    for precision, cap in (("fp16", "FP16"), ("bf16", "BF16")):
        profile = replace(load_profile("cpu-openvino"), precision=precision)
        if cap in caps:
            get_target(profile).runner(_entry_models()[1][1])
        else:
            with pytest.raises(UserError, match=cap):
                get_target(profile)
