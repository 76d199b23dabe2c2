"""Zero-cost proxies: NASWOT rewards distinct activation patterns, synflow is a sum of per-layer
terms that scale with the weights, both deterministic for a seed; size counts what it should."""

import math

import pytest
import torch
from torch import nn

from evolve.zero_cost import fresh_subnet, naswot, size, synflow
from supernet import SearchSpace
from tests.conftest import TINY_SPACE


def images(n=16, seed=0):
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def conv_relu(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Hardswish())


def test_naswot_rewards_distinct_activation_patterns():
    net, x = conv_relu(), images()
    distinct = naswot(net, x)
    assert math.isfinite(distinct)
    twins = torch.cat([x[:8], x[:8]])  # pairs of identical codes: K is singular
    assert naswot(net, twins) < distinct
    dead = conv_relu()
    with torch.no_grad():
        for m in dead:
            if isinstance(m, nn.Conv2d):
                m.weight.zero_()
                m.bias.fill_(1.0)  # every unit active for every image: one code for all
    assert naswot(dead, x) < distinct
    assert naswot(net, x) == distinct  # the model is not changed by scoring it


def test_synflow_positive_and_scales_with_a_layer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, bias=False),
                        nn.Flatten(), nn.Linear(4 * 4 * 4, 3, bias=False))
    base = synflow(net, (1, 1, 8, 8))
    assert math.isfinite(base)
    # bias-free, BN removed: R is linear in each layer's weights, so the score is (layers) x R, and
    # doubling one layer's weights doubles it, whatever their sign (|weights| are used)
    with torch.no_grad():
        net[0].weight.mul_(-2)
    assert synflow(net, (1, 1, 8, 8)) == pytest.approx(base + math.log(2), abs=1e-9)
    plain = nn.Sequential(*[m for m in net if not isinstance(m, nn.BatchNorm2d)])
    assert synflow(plain, (1, 1, 8, 8)) == pytest.approx(base + math.log(2), abs=1e-9)  # BN plays no part


def test_fresh_subnets_deterministic_for_a_seed():
    space = SearchSpace.from_dict(TINY_SPACE)
    arch = space.largest()
    state = torch.get_rng_state()
    a, b, c = (fresh_subnet(space, arch, s) for s in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    x = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    assert naswot(a, x) == naswot(b, x) and synflow(a, (1, 1, 16, 16)) == synflow(b, (1, 1, 16, 16))
    assert synflow(a, (1, 1, 16, 16)) != synflow(c, (1, 1, 16, 16))
    assert math.isfinite(naswot(a, x))
    assert synflow(fresh_subnet(space, space.smallest(), 0), (1, 1, 12, 12)) < synflow(a, (1, 1, 16, 16))


def test_size_counts_params_and_macs():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    params, macs = size(net, (1, 1, 8, 8))
    assert params == 4 * 9 + 4 + 4 * 64 * 10 + 10
    assert macs == 4 * 9 * 64 + 4 * 64 * 10
