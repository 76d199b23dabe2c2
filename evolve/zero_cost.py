"""Zero-cost proxies: a score for a subnet from one minibatch (or none), without training or measuring it.

- NASWOT (Mellor et al. 2021, "Neural Architecture Search without Training"): each image gets a binary
  code over the network's activation units, 1 where a unit's pre-activation is > 0; the kernel
  K = C C^T + (1 - C)(1 - C)^T counts, for each pair of images, the units on which their codes agree,
  and the score is log |det K|. Units here: every element of the input of every nn.ReLU and
  nn.Hardswish module. Hard-swish is not ReLU: it is 0 below -3 and negative in (-3, 0); its unit's
  code is still the sign of its input (x > 0), the nearest reading of the paper's "active" for it.
  The squeeze-excite gates (functional relu and hard-sigmoid on a 1x1 map) are not counted.
  BN uses the minibatch's statistics (train mode), on a copy of the model.
- synflow (Tanaka et al. 2020), in the zero-cost NAS variant (Abdelfattah et al. 2021): BN removed,
  every parameter replaced by its absolute value, double precision, an all-ones input; with R the sum
  of the output, the score is the sum over conv and linear weights of |theta * dR/dtheta|, reported
  as its natural log.
- size baselines: parameters and multiply-accumulates of the subnet (`size`).

`fresh_subnet` builds an arch's network from scratch with PyTorch's default initialisation (the
setting of the zero-cost literature); `Supernet.extract` gives the trained weights instead.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from supernet import ArchSpec, Head, SearchSpace, Stem, SubNet, block_for


def fresh_subnet(space: SearchSpace, arch: ArchSpec, seed: int) -> SubNet:
    """`arch` built from scratch with default initialisation drawn from `seed` (the global RNG is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        blocks = [block_for(space, s, b == 0, spec.kernel_size, spec.expand_ratio)
                  for s, stage in enumerate(arch.stages) for b, spec in enumerate(stage)]
        return SubNet(Stem(space), blocks, Head(space))


@torch.no_grad()
def naswot(model: nn.Module, images: torch.Tensor) -> float:
    """log |det K| of the binary activation-pattern kernel over `images` (a preprocessed minibatch)."""
    net = copy.deepcopy(model).train()
    kernel = torch.zeros(len(images), len(images), dtype=torch.float64)

    def add_codes(_: nn.Module, inputs: tuple[torch.Tensor, ...], __: torch.Tensor) -> None:
        nonlocal kernel
        c = (inputs[0] > 0).flatten(1).to(torch.float64)
        kernel = kernel + c @ c.T + (1 - c) @ (1 - c).T

    hooks = [m.register_forward_hook(add_codes) for m in net.modules() if isinstance(m, (nn.ReLU, nn.Hardswish))]
    try:
        net(images)
    finally:
        for h in hooks:
            h.remove()
    return float(torch.linalg.slogdet(kernel).logabsdet)


def synflow(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """log of sum |theta * dR/dtheta| over conv and linear weights; BN removed, |weights|, all-ones input."""
    net = _without_bn(copy.deepcopy(model)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad()
    net(torch.ones(input_shape, dtype=torch.float64)).sum().backward()
    weights = [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    total = sum(float((w.detach() * w.grad).abs().sum()) for w in weights if w.grad is not None)
    return math.log(total) if total > 0 else -math.inf


def size(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(parameters, multiply-accumulates per image): conv and linear MACs counted on a forward pass."""
    macs = 0

    def count(m: nn.Module, _: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        macs += m.weight.numel() * (out.shape[2] * out.shape[3] if out.dim() == 4 else 1)

    net = copy.deepcopy(model).eval()
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(count)
    with torch.no_grad():
        net(torch.zeros((1, *input_shape[1:])))
    return sum(p.numel() for p in model.parameters()), macs


def _without_bn(net: nn.Module) -> nn.Module:
    for name, child in net.named_children():
        setattr(net, name, nn.Identity() if isinstance(child, nn.modules.batchnorm._BatchNorm) else _without_bn(child))
    return net
