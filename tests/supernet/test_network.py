import copy
import random

import pytest
import torch

from supernet import SearchSpace, Supernet
from supernet.elastic import ElasticDepthwise
from tests.conftest import TINY_SPACE


def _perturbed(space: SearchSpace) -> Supernet:
    torch.manual_seed(0)
    net = Supernet(space)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "transforms" in name:
                p.add_(0.05 * torch.randn_like(p))
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.data.uniform_(0.5, 1.5)
    return net.eval()


@pytest.mark.parametrize("space", [SearchSpace(), SearchSpace.from_dict(TINY_SPACE)], ids=["full", "tiny"])
def test_extract_matches_supernet(space):
    net = _perturbed(space)
    rng = random.Random(3)
    outs = []
    for _ in range(4):
        arch = space.sample(rng)
        x = torch.randn(3, space.in_channels, arch.resolution, arch.resolution)
        net.set_arch(arch)
        ref = net(x)
        sub = net.extract(arch).eval()
        assert isinstance(sub, torch.nn.Module) and not any(isinstance(m, Supernet) for m in sub.modules())
        torch.testing.assert_close(sub(x), ref, rtol=1e-5, atol=1e-5)
        n_blocks = sum(arch.depths)
        assert len(sub.blocks) == n_blocks
        outs.append(ref)
    assert not torch.allclose(outs[0], outs[1])  # different archs compute different things


def test_kernel_transform_is_centre_crop_at_init():
    dw = ElasticDepthwise(4, (3, 5, 7), 1)
    full = dw.kernel(7, 4)
    torch.testing.assert_close(dw.kernel(5, 4), full[:, :, 1:6, 1:6])
    torch.testing.assert_close(dw.kernel(3, 4), full[:, :, 2:5, 2:5])
    with torch.no_grad():
        dw.transforms["3"].add_(0.1)
    assert not torch.allclose(dw.kernel(3, 4), full[:, :, 2:5, 2:5])


def test_sort_channels_keeps_function_of_widest_and_orders_by_importance():
    space = SearchSpace.from_dict(TINY_SPACE)
    net = _perturbed(space)
    arch = space.largest()
    x = torch.randn(2, 1, arch.resolution, arch.resolution)
    net.set_arch(arch)
    before = net(x)
    sorted_net = copy.deepcopy(net)
    sorted_net.sort_channels()
    torch.testing.assert_close(sorted_net(x), before, rtol=1e-5, atol=1e-5)
    block = sorted_net.stages[0][0]
    importance = block.project_conv.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])


def test_depth_runs_first_blocks_only():
    space = SearchSpace.from_dict(TINY_SPACE)
    net = _perturbed(space)
    arch = space.uniform(16, 3, 3, 1)
    net.set_arch(arch)
    x = torch.randn(1, 1, 16, 16)
    y1 = net(x)
    with torch.no_grad():  # changing an inactive (second) block must not change the output
        net.stages[0][1].project_conv.weight.add_(1.0)
    torch.testing.assert_close(net(x), y1)
