import numpy as np
import pytest
import torch

from profiler import get_backend, load_profile, to_onnx
from supernet import SearchSpace, UserError, block_for

SPACE = SearchSpace()


def _block_and_input():
    torch.manual_seed(0)
    block = block_for(SPACE, 1, True, 5, 4).eval()
    x = torch.randn(1, SPACE.stage_in_channels(1), 14, 14)
    return block, x


def _available(name):
    ok, why = get_backend(name, require=False).available()
    return ok, why


def test_onnxruntime_matches_torch():
    block, x = _block_and_input()
    run = get_backend("onnxruntime").load(to_onnx(block, tuple(x.shape)), load_profile("cpu-onnxruntime"))
    with torch.no_grad():
        ref = block(x).numpy()
    assert np.abs(run(x.numpy())[0] - ref).max() < 1e-4


@pytest.mark.openvino
@pytest.mark.skipif(not _available("openvino")[0], reason=f"OpenVINO absent: {_available('openvino')[1]}")
def test_openvino_f32_matches_torch():
    block, x = _block_and_input()
    prof = load_profile("cpu-openvino")
    assert prof.precision == "fp32"  # forced to f32: this CPU would otherwise run bf16
    run = get_backend("openvino").load(to_onnx(block, tuple(x.shape)), prof)
    with torch.no_grad():
        ref = block(x).numpy()
    assert np.abs(run(x.numpy())[0] - ref).max() < 1e-4


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.skipif(not _available("tensorrt")[0], reason=f"TensorRT backend cannot run here: "
                                                           f"{_available('tensorrt')[1]}")
def test_tensorrt_matches_torch():
    block, x = _block_and_input()
    run = get_backend("tensorrt").load(to_onnx(block, tuple(x.shape)), load_profile("gpu-tensorrt"))
    with torch.no_grad():
        ref = block(x).numpy()
    assert np.abs(run(x.numpy())[0] - ref).max() < 5e-2  # fp16


def test_absent_backend_is_a_clear_user_error():
    ok, why = _available("tensorrt")
    if ok:
        pytest.skip("TensorRT is present here")
    with pytest.raises(UserError, match="cannot run on this machine"):
        get_backend("tensorrt")
    with pytest.raises(UserError, match="unknown backend"):
        get_backend("coreml")
