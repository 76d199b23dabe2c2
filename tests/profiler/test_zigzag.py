"""The zigzag target (FPGA-style accelerators modelled with ZigZag): tiny int8 QDQ modules, the shipped profiles."""

from __future__ import annotations

import importlib.util
import logging
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from hwofa.common import UserError
from profiler.onnx_io import to_onnx
from profiler.profiles import PROFILE_DIR, load_profile

pytestmark = [pytest.mark.fpga,
              pytest.mark.skipif(importlib.util.find_spec("zigzag") is None,
                                 reason="zigzag-dse is not installed (pip install 'hwofa[fpga]')")]

DPU = "fpga-dpu-b4096"


def qdq(module: nn.Module, shape: tuple[int, ...]) -> bytes:
    """`module` as int8 QDQ ONNX, the way the LUT build makes entries (onnxruntime quantize_static)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.items = iter([{"input": rng.standard_normal(shape).astype(np.float32)} for _ in range(3)])

        def get_next(self):
            return next(self.items, None)

    torch.manual_seed(0)
    fp32 = onnx.load_from_string(to_onnx(module, shape))
    out = onnx.ModelProto()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(fp32, str(src))
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8)
        out.ParseFromString(dst.read_bytes())
    return out.SerializeToString()


def block(se: bool = True, act: str = "hswish") -> nn.Module:
    from supernet.layers import MBBlock

    return MBBlock(8, 8, 3, 3, 1, se, act)


def target(profile=DPU):
    from profiler.backends import get_target

    return get_target(load_profile(profile))


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty $HWOFA_HOME: nothing cached."""
    home = tmp_path / "home"
    monkeypatch.setenv("HWOFA_HOME", str(home))
    return home


def profile_with(tmp_path: Path, **options) -> Path:
    """A copy of the DPU profile with some options replaced (paths made absolute)."""
    data = yaml.safe_load((PROFILE_DIR / f"{DPU}.yaml").read_text())
    for key in ("accelerator", "mapping"):
        data["options"][key] = str(PROFILE_DIR / data["options"][key])
    data["options"].update(options)
    data["options"] = {k: v for k, v in data["options"].items() if v is not None}
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# ---- profiles and options ------------------------------------------------------------
@pytest.mark.parametrize("name", ["fpga-dpu-b4096", "fpga-eyeriss-like"])
def test_shipped_profiles_run_here(name: str) -> None:
    t = target(name)
    assert t.available() == (True, "")
    dep = t.depends_on()
    assert dep["target"] == "zigzag" and len(dep["accelerator_sha256"]) == 64 and len(dep["mapping_sha256"]) == 64
    assert {"clock_mhz", "lpf_limit", "version"} <= set(dep)
    assert "MHz" in t.describe() and "int8" in t.describe()
    assert t.kind == "cost-model" and t.source == "modelled" and t.precisions == ("int8",)


@pytest.mark.parametrize("options, says", [
    ({"accelerator": "no/such/accelerator.yaml"}, "does not exist"),
    ({"clock_mhz": -3}, "clock_mhz"),
    ({"lpf_limit": "two"}, "lpf_limit"),
    ({"mapping": None}, "options.mapping"),
    ({"frequency": 300}, "unknown option"),
])
def test_bad_options_are_one_paragraph_user_errors(tmp_path: Path, options, says) -> None:
    from profiler.backends import get_target

    with pytest.raises(UserError) as err:
        get_target(load_profile(profile_with(tmp_path, **options)))
    assert says in str(err.value) and "\n" not in str(err.value)


def test_invalid_accelerator_file_is_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "acc.yaml"
    bad.write_text("name: broken\nmemories: {}\n")
    with pytest.raises(UserError, match="not a valid ZigZag accelerator") as err:
        target(str(profile_with(tmp_path, accelerator=str(bad))))
    assert "\n" not in str(err.value)


def test_mapping_without_depthwise_entry_is_refused(tmp_path: Path) -> None:
    mapping = yaml.safe_load((PROFILE_DIR / "accelerators" / "dpu-b4096.mapping.yaml").read_text())
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump([e for e in mapping if e["name"] != "depthwise"]))
    with pytest.raises(UserError, match="depthwise"):
        target(str(profile_with(tmp_path, mapping=str(path))))


def test_layer_too_big_for_the_accelerator_is_user_error() -> None:
    """The Eyeriss-like array keeps feature maps in its 108 KB buffer: a 64x112x112 input cannot fit."""
    with pytest.raises(UserError, match="does not fit the accelerator's memories"):
        target("fpga-eyeriss-like").cost(to_onnx(nn.Conv2d(64, 64, 1), (1, 64, 112, 112)))


def test_unknown_op_is_named() -> None:
    with pytest.raises(UserError, match="Softmax"):
        target().cost(to_onnx(nn.Sequential(nn.Flatten(), nn.Softmax(dim=1)), (1, 4, 2, 2)))


# ---- figures -----------------------------------------------------------------------------
def test_bigger_conv_costs_more_and_timing_is_cycles_over_clock() -> None:
    t = target()
    small, big = (qdq(nn.Conv2d(8, k, 3, padding=1), (1, 8, 8, 8)) for k in (8, 64))
    seen: list[tuple[str, object, list]] = []
    res = t.cost_many({"small": lambda: small, "big": lambda: big}, random.Random(0),
                      on_done=lambda k, tm, rounds: seen.append((k, tm, rounds)), progress=False)
    assert res["big"].p50_ms > 2 * res["small"].p50_ms
    assert [k for k, _, r in seen if r == []] == ["small", "big"]
    d = t.detail(big)
    assert res["big"].p50_ms == res["big"].p90_ms == pytest.approx(d["cycles"] / 300e3, rel=1e-6)
    assert res["big"].n == 1 and res["big"].cv == 0.0


def test_depthwise_uses_its_own_unrolling(tmp_path: Path) -> None:
    """With the mapping's depthwise entry the layer runs on 192 lanes; mapped like a dense conv it would use
    a handful of the 2,048 (ZigZag's near-zero-utilisation pitfall)."""
    dw = qdq(nn.Conv2d(64, 64, 3, padding=1, groups=64), (1, 64, 8, 8))
    ours = target().detail(dw)["utilisation_by_type"]["depthwise"]
    mapping = yaml.safe_load((PROFILE_DIR / "accelerators" / "dpu-b4096.mapping.yaml").read_text())
    dense = next(e for e in mapping if e["name"] == "default")
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump([{**e, "spatial_mapping": dense["spatial_mapping"]} if e["name"] == "depthwise"
                                    else e for e in mapping]))
    naive = target(str(profile_with(tmp_path, mapping=str(path)))).detail(dw)["utilisation_by_type"]["depthwise"]
    assert ours > 0.02 and ours > 4 * naive


def test_se_hardswish_add_pool_are_not_free() -> None:
    d = target().detail(qdq(block(), (1, 8, 8, 8)))
    cycles = d["cycles_by_type"]
    assert all(cycles[k] > 0 for k in ("conv", "depthwise", "activation", "mul", "add", "pool")), cycles
    assert d["layers_by_type"]["activation"] == 3  # two hard-swish, one hard-sigmoid
    assert d["energy_uj"] > 0 and 0 < d["mac_utilisation"] < 1


def test_int8_qdq_and_fp32_give_the_same_layers() -> None:
    torch.manual_seed(0)
    m = block(act="relu")
    t = target()
    assert t.cost(qdq(m, (1, 8, 8, 8))).p50_ms == t.cost(to_onnx(m, (1, 8, 8, 8))).p50_ms


class _DecomposedHardswish(nn.Module):
    """x * hardsigmoid(x): how onnxruntime's quantization pre-processing rewrites HardSwish."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * nn.functional.hardsigmoid(x)


def test_decomposed_hardswish_costs_what_hardswish_costs() -> None:
    t = target()
    conv = nn.Conv2d(8, 16, 1)
    plain = t.detail(qdq(nn.Sequential(conv, nn.Hardswish()), (1, 8, 8, 8)))
    split = t.detail(qdq(nn.Sequential(conv, _DecomposedHardswish()), (1, 8, 8, 8)))
    assert split["layers_by_type"] == plain["layers_by_type"] == {"activation": 1, "conv": 1}
    assert split["cycles"] == plain["cycles"]


def test_subnet_costs_the_sum_of_its_lut_entries() -> None:
    """The LUT sums stem, block and head entries: on a cost model that sum is the whole subnet's figure."""
    from profiler.build import module_for, subnet_for
    from profiler.lut import all_entries, arch_keys
    from supernet import SearchSpace
    from tests.conftest import TINY_SPACE

    space = SearchSpace.from_dict(TINY_SPACE)
    entries, t = all_entries(space), target()
    small, large = space.smallest(), space.largest()
    whole = {a: t.cost(to_onnx(subnet_for(space, a), (1, 1, a.resolution, a.resolution))).p50_ms
             for a in (small, large)}
    summed = sum(t.cost(to_onnx(*module_for(space, entries[k]))).p50_ms for k in arch_keys(space, large))
    assert summed == pytest.approx(whole[large], rel=1e-9)
    assert whole[large] > whole[small] > 0


def test_cache_hit_is_identical_and_skips_zigzag(fresh_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = qdq(block(), (1, 8, 8, 8))
    first = target()
    a = first.cost(model)
    assert first.evaluated > 0
    assert len(list((fresh_home / "zigzag").glob("dpu-b4096-*.json"))) == 1

    def boom(*args, **kwargs):
        raise AssertionError("ZigZag called on a cached layer")

    monkeypatch.setattr("profiler.backends.zigzag.cost_layer", boom)
    again = target()
    assert again.cost(model) == a and again.evaluated == 0


def test_zigzag_leaves_no_files_and_no_log_spam(fresh_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    model = to_onnx(block(), (1, 8, 8, 8))  # fp32: no quantizer in the way of the log check
    root = logging.getLogger()
    before = (root.level, list(root.handlers), logging.getLogger("zigzag").level)
    capsys.readouterr()
    target().cost(model)
    assert not (tmp_path / "outputs").exists()
    assert (root.level, list(root.handlers), logging.getLogger("zigzag").level) == before
    err = capsys.readouterr().err
    assert "mapping" not in err and "unrolling" not in err, err


def test_zigzag_own_api_agrees_with_ours(tmp_path: Path) -> None:
    """benchmarks/zigzag_reproduce.py: ZigZag's API on the whole (Q/DQ-stripped) file vs our MAC layers."""
    spec = importlib.util.spec_from_file_location("zigzag_reproduce",
                                                  Path(__file__).parents[2] / "benchmarks" / "zigzag_reproduce.py")
    rep = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("zigzag_reproduce", rep)
    spec.loader.exec_module(rep)
    path = tmp_path / "block.onnx"
    path.write_bytes(qdq(block(), (1, 8, 8, 8)))
    t = target()
    mine = rep.ours(path, t)
    theirs = rep.zigzag_own(rep.for_zigzag(path), t)
    assert mine["mac_layer_cycles"] == pytest.approx(theirs["cycles"], rel=0.10)
    assert mine["cycles"] > mine["mac_layer_cycles"]  # SE, hard-swish, add cost cycles ZigZag's flow leaves out
    assert not (tmp_path / "outputs").exists()
