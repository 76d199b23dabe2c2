"""GPU targets (torch-cuda, TensorRT): the CPU-side logic for real, the GPU paths where a GPU is."""

import importlib.util
import json
import random
import sys
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from hwofa.common import UserError
from profiler import get_target, load_profile, to_onnx
from profiler.backends import _cuda
from profiler.backends._onnx_fp16 import float_types, to_fp16
from profiler.backends._torch_graph import fold_bn
from profiler.backends.base import ModuleSource
from profiler.backends.tensorrt import (
    TensorIO,
    _Bound,
    check,
    engine_model,
    io_tensors,
    network_flags,
    torch_dtype,
)
from profiler.backends.torch_cuda import TorchCudaTarget
from profiler.build import model_source, module_for, subnet_for
from profiler.interleave import measure_many
from profiler.precision import TENSORRT_INT8, quantize_int8
from profiler.profiles import TimingProtocol
from profiler.provenance import make_header, stale_reason
from profiler.timing import Round
from supernet import SearchSpace, block_for

SPACE = SearchSpace()
HAS_CUDA = torch.cuda.is_available()
NO_GPU = f"no CUDA GPU here: {TorchCudaTarget(load_profile('gpu-torch-fp16-b1')).available()[1]}"
GPU_PROFILES = ("gpu-torch-fp16-b64", "gpu-torch-fp16-b1")


def _randomise_bn(module: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))
    return module.eval()


# ---- BN folding (CPU, fp32) ---------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: block_for(SPACE, 1, True, 5, 4), lambda: block_for(SPACE, 2, False, 7, 6),
                                  lambda: subnet_for(SPACE, SPACE.sample(random.Random(3)))])
def test_fold_bn_equals_the_unfolded_module(make):
    torch.manual_seed(0)
    module = _randomise_bn(make())
    x = torch.randn(4, *module_shape(module, 28))
    folded = fold_bn(module)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in module.modules())  # the original is untouched
    with torch.no_grad():
        ref, got = module(x), folded(x)
    assert torch.allclose(ref, got, rtol=1e-4, atol=1e-5), (ref - got).abs().max()


def module_shape(module: nn.Module, r: int) -> tuple[int, ...]:
    first = next(m for m in module.modules() if isinstance(m, nn.Conv2d))
    return (first.in_channels, r, r)


def test_fold_bn_leaves_a_lone_batchnorm_working():
    net = _randomise_bn(nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3)))
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        assert torch.allclose(net(x), fold_bn(net)(x))


# ---- event samples ------------------------------------------------------------------------------------
def test_event_samples_are_summarised_per_replay():
    r = _cuda.summarize_events([1.0, 1.2, 0.8, 1.0, 4.0], replays=4)
    assert r.median_ms == pytest.approx(0.25) and r.n == 5
    assert r.p90_ms == pytest.approx(np.percentile([0.25, 0.3, 0.2, 0.25, 1.0], 90))
    with pytest.raises(ValueError):
        _cuda.per_replay_ms([1.0], 0)


def test_replays_and_spin_are_sized_from_the_item():
    assert _cuda.replays_for(0.001) == _cuda.MAX_REPLAYS
    assert _cuda.replays_for(10.0) == _cuda.MIN_REPLAYS
    assert _cuda.replays_for(0.05) == 5  # 0.25 ms per event pair
    assert _cuda.replays_for(float("nan")) == _cuda.MAX_REPLAYS
    assert _cuda.sleep_cycles(10e-6, 10, 1e6) == int(2.0 * 0.01 * 10 * 1e6)


class _SelfTimed:
    """A runner that times itself (as a DeviceRunner does with CUDA events)."""

    def __init__(self, ms: float) -> None:
        self.ms, self.calls = ms, 0

    def __call__(self) -> None:
        self.calls += 1

    def time_round(self, protocol: TimingProtocol) -> Round:
        return _cuda.summarize_events([self.ms * 4] * protocol.round_runs, 4)


def test_the_timing_routine_takes_a_self_timed_round():
    proto = TimingProtocol()
    out = measure_many({"a": lambda: _SelfTimed(0.5), "b": lambda: _SelfTimed(2.0)}, proto,
                       canary=_SelfTimed(0.1), progress=False)
    assert out["a"].p50_ms == pytest.approx(0.5) and out["b"].p50_ms == pytest.approx(2.0)
    assert out["a"].converged and out["a"].rounds_replaced == 0


# ---- provenance and staleness by GPU ----------------------------------------------------------------
GPU_A = {"gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "gpu_memory_gib": 79.1, "driver": "550.54.15",
         "cuda": "12.4", "cudnn": 90100, "torch": "2.5.1+cu124"}


def _target(monkeypatch, facts):
    monkeypatch.setattr("profiler.backends._cuda.gpu_facts", lambda: dict(facts))
    return TorchCudaTarget(load_profile("gpu-torch-fp16-b64"))


@pytest.mark.parametrize("field,value", [("gpu", "NVIDIA H200"), ("driver", "560.28.03"), ("cuda", "12.6"),
                                         ("compute_capability", "8.0")])
def test_a_lut_built_on_one_gpu_is_stale_on_another(monkeypatch, field, value):
    target = _target(monkeypatch, GPU_A)
    table = SimpleNamespace(header=make_header(target.profile, SPACE, target))
    assert table.header["target"]["gpu"] == GPU_A["gpu"] and "cpu" not in table.header["target"]
    assert stale_reason(table, target.profile, target) is None
    other = _target(monkeypatch, {**GPU_A, field: value})
    why = stale_reason(table, other.profile, other)
    assert why is not None and field in why and str(value) in why


def test_another_cpu_does_not_make_a_gpu_lut_stale(monkeypatch):
    target = _target(monkeypatch, GPU_A)
    header = make_header(target.profile, SPACE, target)
    header["host"]["cpu"] = "some other CPU"
    assert stale_reason(SimpleNamespace(header=header), target.profile, target) is None


def test_gpu_label_names_the_gpu(monkeypatch):
    target = _target(monkeypatch, GPU_A)
    assert target.label().startswith("measured: torch-cuda") and GPU_A["gpu"] in target.label()


def test_gpu_state_without_nvml_says_so(monkeypatch):
    monkeypatch.setattr(_cuda, "_nvml", lambda: None)
    assert "nvidia-ml-py" in _cuda.gpu_state()["note"]


# ---- torch-cuda: the interface, without a GPU --------------------------------------------------------
def test_model_source_carries_the_module_at_the_profile_batch():
    target = get_target(load_profile("cpu-onnxruntime"))
    module, shape = module_for(SPACE, {"kind": "stem", "resolution": 28})
    src = model_source(module, shape, target)
    assert isinstance(src, ModuleSource) and src.module is module and src.input_shape == (1, *shape[1:])
    assert onnx.load_from_string(src()).graph.node  # still a ModelSource: calling it gives the ONNX


def test_torch_cuda_wants_modules_not_onnx():
    target = TorchCudaTarget(load_profile("gpu-torch-fp16-b1"))
    assert target.wants_module and target.runner(b"") is None
    with pytest.raises(TypeError, match="ModuleSource"):
        target.cost_many({"m": lambda: b""}, random.Random(0), progress=False)
    with pytest.raises(UserError, match="cannot run an ONNX"):
        target.load(b"")


@pytest.mark.parametrize("name", GPU_PROFILES)
def test_gpu_profiles_load_and_validate(name):
    prof = load_profile(name)
    assert (prof.kind, prof.backend, prof.precision) == ("gpu", "torch-cuda", "fp16")
    assert prof.batch_size == (64 if name.endswith("b64") else 1)
    target = get_target(prof, require=False)
    assert isinstance(target, TorchCudaTarget) and target.precision_problem() is None


@pytest.mark.skipif(HAS_CUDA, reason="a CUDA GPU is visible: the GPU profiles run here")
def test_devices_says_why_gpu_profiles_do_not_run_here(capsys):
    from hwofa.cli import main

    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    for name in GPU_PROFILES:
        line = next(ln for ln in out.splitlines() if ln.startswith(name))
        assert "torch-cuda" in line and "not here" in line and "no CUDA GPU is visible" in line
    with pytest.raises(UserError, match="cannot run on this machine"):
        get_target(load_profile("gpu-torch-fp16-b64"))


# ---- TensorRT: precision and dtype choices, return values, given fakes ------------------------------
def _block_onnx(batch: int = 1) -> bytes:
    torch.manual_seed(0)
    return to_onnx(block_for(SPACE, 1, True, 3, 3), (batch, SPACE.stage_in_channels(1), 14, 14))


def test_tensorrt_fp16_is_an_fp16_model_for_a_strongly_typed_network():
    fp32 = _block_onnx()
    fp16 = engine_model(fp32, "fp16")
    assert float_types(fp32) == {onnx.TensorProto.FLOAT} and float_types(fp16) == {onnx.TensorProto.FLOAT16}
    onnx.checker.check_model(onnx.load_from_string(fp16), full_check=True)
    assert to_fp16(fp16) == fp16  # idempotent
    assert engine_model(fp32, "fp32") == fp32


def test_tensorrt_fp16_model_computes_like_the_fp32_one():
    ort = pytest.importorskip("onnxruntime")
    fp32, x = _block_onnx(), np.random.default_rng(0).standard_normal((1, SPACE.stage_in_channels(1), 14, 14))
    try:
        half = ort.InferenceSession(engine_model(fp32, "fp16"), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - the CPU provider lacks fp16 kernels for some ops in some versions
        pytest.skip(f"onnxruntime's CPU provider cannot run this fp16 model: {exc}")
    ref = ort.InferenceSession(fp32, providers=["CPUExecutionProvider"]).run(None, {"input": x.astype(np.float32)})[0]
    got = half.run(None, {"input": x.astype(np.float16)})[0]
    assert got.dtype == np.float16
    assert np.abs(got.astype(np.float32) - ref).max() <= 0.02 * np.abs(ref).max()


def test_tensorrt_int8_needs_a_qdq_model():
    fp32 = _block_onnx()
    with pytest.raises(UserError, match="QDQ"):
        engine_model(fp32, "int8")
    calib = np.random.default_rng(0).standard_normal((4, SPACE.stage_in_channels(1), 14, 14)).astype(np.float32)
    qdq = quantize_int8(fp32, calib, TENSORRT_INT8)
    assert engine_model(qdq, "int8") == qdq
    with pytest.raises(UserError):
        engine_model(fp32, "bf16")


class _DT:
    def __init__(self, name: str) -> None:
        self.name = name


FAKE_TRT = SimpleNamespace(TensorIOMode=SimpleNamespace(INPUT="in", OUTPUT="out"),
                           NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=2))


class _FakeEngine:
    """An engine description: an fp16 input of dynamic batch, an fp32 output."""

    tensors = {"input": ("in", (-1, 3, 8, 8), _DT("HALF")), "logits": ("out", (-1, 10), _DT("FLOAT"))}
    num_io_tensors = 2

    def __init__(self, ok: dict[str, bool] | None = None) -> None:
        self.ok = ok or {}

    def get_tensor_name(self, i):
        return list(self.tensors)[i]

    def get_tensor_mode(self, n):
        return self.tensors[n][0]

    def get_tensor_shape(self, n):
        return self.tensors[n][1]

    def get_tensor_dtype(self, n):
        return self.tensors[n][2]

    def create_execution_context(self):
        return _FakeContext(self.ok)


class _FakeContext:
    def __init__(self, ok):
        self.ok, self.shapes = ok, {}

    def set_input_shape(self, n, shape):
        self.shapes[n] = shape
        return self.ok.get("set_input_shape", True)

    def get_tensor_shape(self, n):
        return self.shapes.get(n, (self.shapes.get("input", (-1,))[0], 10))


def test_tensorrt_buffers_take_the_engine_dtypes():
    assert torch_dtype(_DT("HALF")) is torch.float16 and torch_dtype(_DT("INT8")) is torch.int8
    assert torch_dtype("DataType.FLOAT") is torch.float32
    with pytest.raises(RuntimeError, match="FP8"):
        torch_dtype(_DT("FP8"))
    engine = _FakeEngine()
    ctx = engine.create_execution_context()
    ctx.set_input_shape("input", (64, 3, 8, 8))
    assert io_tensors(engine, ctx, FAKE_TRT) == [TensorIO("input", True, (64, 3, 8, 8), torch.float16),
                                                 TensorIO("logits", False, (64, 10), torch.float32)]
    with pytest.raises(RuntimeError, match="unresolved shape"):
        io_tensors(engine, engine.create_execution_context(), FAKE_TRT)


def test_tensorrt_failed_calls_raise_instead_of_being_timed():
    check(True, "x")
    for bad in (False, None):
        with pytest.raises(RuntimeError, match="execute_async_v3 failed"):
            check(bad, "execute_async_v3")
    with pytest.raises(RuntimeError, match="set_input_shape"):
        _Bound(_FakeEngine({"set_input_shape": False}), FAKE_TRT, 64)


def test_tensorrt_network_is_strongly_typed_on_10_and_11():
    assert network_flags(FAKE_TRT) == 1 << 2
    assert network_flags(SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace())) == 0


# ---- benchmarks/gpu_check.py: its CPU-side parts ------------------------------------------------------
def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", "benchmarks/gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_gpu_check_arguments_summary_and_json(tmp_path):
    gc = _gpu_check()
    args = gc.parse_args(["--out", str(tmp_path)])
    assert args.device == "gpu-torch-fp16-b64" and args.subnets == 30
    with pytest.raises(SystemExit):
        gc.parse_args(["--subnets", "10"])
    assert gc.timer_agreement(1.02, 1.0) == pytest.approx(2.0)
    ref = np.array([[1.0, 2.0], [3.0, -4.0]])
    d = gc.relative_diff(ref, ref + 0.01)
    assert d["max_abs_diff"] == pytest.approx(0.01) and d["rel_diff"] == pytest.approx(0.0025)
    res = {"parity": [{"rel_diff": 0.001}], "timer": [{"agreement_pct": 2.0}, {"agreement_pct": 7.0}],
           "lut": {"fresh_fidelity": {"within_10pct": 0.93, "n": 30}}}
    path = gc.result_path(tmp_path, "gpu-torch-fp16-b64", "NVIDIA H100 80GB HBM3")
    assert path.name == "gpu_check_gpu-torch-fp16-b64_nvidia-h100-80gb-hbm3.json"
    gc.write(path, res)
    s = json.loads(path.read_text())["summary"]
    assert s["fp16_parity"]["ok"] and s["lut"]["ok"] and not s["timer"]["ok"] and not s["all_ok"]


# ---- on a GPU ------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason=NO_GPU)
def test_torch_cuda_times_a_subnet_and_matches_fp32():
    from profiler.backends._torch_graph import capture, module_runner
    from profiler.build import subnet_source

    target = get_target(load_profile("gpu-torch-fp16-b1"))
    arch = SPACE.sample(random.Random(0))
    t = target.cost(subnet_source(SPACE, arch, target))
    assert 0 < t.p50_ms < 50
    module = _randomise_bn(subnet_for(SPACE, arch))
    x = torch.randn(8, SPACE.in_channels, arch.resolution, arch.resolution)
    with torch.no_grad():
        ref = module(x).numpy()
    got = module_runner(module, "fp16")(x.numpy())[0]
    assert np.abs(got - ref).max() <= 0.05 * np.abs(ref).max()
    run = capture(module, (8, SPACE.in_channels, arch.resolution, arch.resolution), "fp16")
    r = run.time_round(target.profile.timing)
    assert r.n >= target.profile.timing.round_runs and r.median_ms > 0
    assert "gpu" in target.depends_on() and "cpu" not in target.depends_on()


def test_gpu_state_before_and_after_goes_in_the_state_not_the_provenance(monkeypatch):
    target = _target(monkeypatch, GPU_A)
    assert "gpu" not in target.state()
    states = iter([{"sm_clock_mhz": 1980, "temperature_c": 35}, {"sm_clock_mhz": 1755, "temperature_c": 61}])
    monkeypatch.setattr(_cuda, "gpu_state", lambda: next(states))
    target.note_gpu_state()
    gpu = target.state()["gpu"]
    assert gpu["before"]["temperature_c"] == 35 and gpu["after"]["sm_clock_mhz"] == 1755
    assert "temperature_c" not in json.dumps(target.depends_on())
