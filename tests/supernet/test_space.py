import json
import random

import pytest

from hwofa.common import UserError
from supernet import ArchSpec, BlockSpec, SearchSpace
from tests.conftest import TINY_SPACE


def test_arch_json_round_trip():
    space = SearchSpace()
    rng = random.Random(1)
    for _ in range(20):
        arch = space.sample(rng)
        space.validate(arch)
        again = ArchSpec.from_dict(json.loads(json.dumps(arch.to_dict())))
        assert again == arch


def test_space_json_round_trip_and_hash():
    space = SearchSpace.from_dict(TINY_SPACE)
    assert SearchSpace.from_dict(space.to_dict()) == space
    assert space.space_hash() == SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))).space_hash()
    assert space.space_hash() != SearchSpace().space_hash()


def test_sampling_uses_passed_rng():
    space = SearchSpace()
    a = [space.sample(random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert space.sample(random.Random(8)) != a[0] or space.sample(random.Random(9)) != a[0]


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d.update(resolution=30), "resolution 30"),
    (lambda d: d["stages"].pop(), "has 4 stages"),
    (lambda d: d["stages"][1].append(d["stages"][1][0]) or d["stages"][1].append(d["stages"][1][0]), "depth"),
    (lambda d: d["stages"][0][0].update(kernel_size=9), "kernel_size 9"),
    (lambda d: d["stages"][2][1].update(expand_ratio=5), "expand_ratio 5"),
])
def test_out_of_space_arch_is_named(mutate, needle):
    space = SearchSpace()
    d = space.uniform(28, 5, 4, 3).to_dict()
    mutate(d)
    with pytest.raises(UserError, match=needle):
        space.validate(ArchSpec.from_dict(d))


@pytest.mark.parametrize("bad", [[], {"resolution": "28", "stages": []}, {"resolution": 28},
                                 {"resolution": 28, "stages": [[{"kernel_size": 3}]]},
                                 {"resolution": 28, "stages": [[{"kernel_size": True, "expand_ratio": 3}]]}])
def test_malformed_arch(bad):
    with pytest.raises(UserError, match="malformed"):
        ArchSpec.from_dict(bad)


def test_bad_space():
    with pytest.raises(UserError, match="strictly increasing"):
        SearchSpace(kernel_sizes=(5, 3))
    with pytest.raises(UserError, match="odd"):
        SearchSpace(kernel_sizes=(3, 4))
    with pytest.raises(UserError, match="unknown field"):
        SearchSpace.from_dict({"colour": 1})


def test_largest_smallest():
    space = SearchSpace()
    assert space.largest().depths == (4,) * 5 and space.largest().resolution == 28
    assert space.smallest().stages[0][0] == BlockSpec(3, 3) and space.smallest().resolution == 20


def test_block_geometry_first_block_carries_stride_and_width():
    space = SearchSpace()  # stem 16 -> stages (16, 24, 32, 48, 64), strides (1, 2, 1, 2, 1)
    g = space.block_geometry(1, first=True, resolution=28)
    assert (g.in_ch, g.out_ch, g.stride, g.se, g.act) == (16, 24, 2, True, "relu")
    assert (g.in_hw, g.out_hw) == (14, 7)  # the stem halves 28; stage 1 halves again
    rest = space.block_geometry(1, first=False, resolution=28)
    assert (rest.in_ch, rest.out_ch, rest.stride, rest.in_hw, rest.out_hw) == (24, 24, 1, 7, 7)
    assert space.block_geometry(1, first=True).in_hw is None
