import numpy as np
import pytest
import torch

from hwofa.common import UserError
from profiler import get_target, load_profile, to_onnx
from profiler.profiles import profile_from_dict
from supernet import SearchSpace, block_for

SPACE = SearchSpace()


def _block_and_input():
    torch.manual_seed(0)
    block = block_for(SPACE, 1, True, 5, 4).eval()
    x = torch.randn(1, SPACE.stage_in_channels(1), 14, 14)
    return block, x


PROFILES = {"onnxruntime": "cpu-onnxruntime", "openvino": "cpu-openvino", "tensorrt": "gpu-tensorrt"}


def _available(name):
    return get_target(load_profile(PROFILES[name]), require=False).available()


def test_onnxruntime_matches_torch():
    block, x = _block_and_input()
    run = get_target(load_profile("cpu-onnxruntime")).runner(to_onnx(block, tuple(x.shape)))
    with torch.no_grad():
        ref = block(x).numpy()
    assert np.abs(run(x.numpy())[0] - ref).max() < 1e-4


@pytest.mark.openvino
@pytest.mark.skipif(not _available("openvino")[0], reason=f"OpenVINO absent: {_available('openvino')[1]}")
def test_openvino_f32_matches_torch():
    block, x = _block_and_input()
    prof = load_profile("cpu-openvino")
    assert prof.precision == "fp32"  # forced to f32: this CPU would otherwise run bf16
    run = get_target(prof).runner(to_onnx(block, tuple(x.shape)))
    with torch.no_grad():
        ref = block(x).numpy()
    assert np.abs(run(x.numpy())[0] - ref).max() < 1e-4


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.skipif(not _available("tensorrt")[0], reason=f"TensorRT backend cannot run here: "
                                                           f"{_available('tensorrt')[1]}")
def test_tensorrt_matches_torch():
    block, x = _block_and_input()
    run = get_target(load_profile("gpu-tensorrt")).runner(to_onnx(block, tuple(x.shape)))
    with torch.no_grad():
        ref = block(x).numpy()
    assert np.abs(run(x.numpy())[0] - ref).max() < 5e-2  # fp16


def test_absent_backend_is_a_clear_user_error():
    ok, why = _available("tensorrt")
    if ok:
        pytest.skip("TensorRT is present here")
    with pytest.raises(UserError, match="cannot run on this machine"):
        get_target(load_profile("gpu-tensorrt"))
    with pytest.raises(UserError, match="unknown backend"):
        get_target(profile_from_dict({"backend": "coreml"}, name="phone", source="test"))
