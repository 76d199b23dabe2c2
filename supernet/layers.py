"""Static (non-elastic) MobileNetV3-style layers: what an extracted subnet is made of.

The profiler builds these one block at a time to measure them; `extract` fills them
with weights copied from the supernet. Plain nn.Modules, nothing elastic.
"""

from __future__ import annotations

import torch
from torch import nn

from supernet.space import SearchSpace


def make_divisible(value: float, divisor: int = 8) -> int:
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def se_channels(mid: int) -> int:
    return make_divisible(mid / 4)


def activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU, "hswish": nn.Hardswish}[name]()


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = se_channels(channels)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = torch.relu(self.reduce(s))
        return x * nn.functional.hardsigmoid(self.expand(s))


class MBBlock(nn.Module):
    """Inverted residual: 1x1 expand, kxk depthwise, optional SE, 1x1 project."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, expand_ratio: int, stride: int,
                 use_se: bool, act: str) -> None:
        super().__init__()
        mid = in_ch * expand_ratio
        self.expand = nn.Sequential(nn.Conv2d(in_ch, mid, 1, bias=False), nn.BatchNorm2d(mid), activation(act))
        self.depthwise = nn.Sequential(
            nn.Conv2d(mid, mid, kernel_size, stride, kernel_size // 2, groups=mid, bias=False),
            nn.BatchNorm2d(mid), activation(act))
        self.se = SqueezeExcite(mid) if use_se else nn.Identity()
        self.project = nn.Sequential(nn.Conv2d(mid, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class Stem(nn.Sequential):
    def __init__(self, space: SearchSpace) -> None:
        super().__init__(nn.Conv2d(space.in_channels, space.stem_channels, 3, space.stem_stride, 1, bias=False),
                         nn.BatchNorm2d(space.stem_channels), nn.Hardswish())


class Head(nn.Module):
    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        last = space.stage_channels[-1]
        self.conv = nn.Sequential(nn.Conv2d(last, space.head_channels, 1, bias=False),
                                  nn.BatchNorm2d(space.head_channels), nn.Hardswish())
        self.classifier = nn.Linear(space.head_channels, space.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.conv(x).mean((2, 3)))


def block_for(space: SearchSpace, stage: int, first: bool, kernel_size: int, expand_ratio: int) -> MBBlock:
    """The block at `stage` (its shape from `SearchSpace.block_geometry`) with this kernel size and expand ratio."""
    g = space.block_geometry(stage, first)
    return MBBlock(g.in_ch, g.out_ch, kernel_size, expand_ratio, g.stride, g.se, g.act)


class SubNet(nn.Module):
    """A plain network for one ArchSpec: stem, the active blocks in order, head."""

    def __init__(self, stem: nn.Module, blocks: list[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))
