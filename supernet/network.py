"""The elastic supernet: stem, five elastic stages, head; `extract` gives a plain subnet."""

from __future__ import annotations

import torch
from torch import nn

from supernet.elastic import ElasticBlock
from supernet.layers import Head, Stem, SubNet
from supernet.space import ArchSpec, SearchSpace


class Supernet(nn.Module):
    """MobileNetV3-style once-for-all network. Call `set_arch` before `forward`.

    The input must already be at the arch's resolution (see `supernet.data.preprocess`).
    """

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        self.stem = Stem(space)
        self.stages = nn.ModuleList()
        for s in range(space.num_stages):
            blocks = nn.ModuleList()
            for b in range(space.max_depth):
                g = space.block_geometry(s, first=b == 0)
                blocks.append(ElasticBlock(g.in_ch, g.out_ch, space.kernel_sizes, space.expand_ratios, g.stride, g.se,
                                           g.act))
            self.stages.append(blocks)
        self.head = Head(space)
        self.arch = space.largest()

    def set_arch(self, arch: ArchSpec) -> None:
        self.space.validate(arch)
        self.arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for blocks, stage in zip(self.stages, self.arch.stages, strict=True):
            for block, spec in zip(blocks, stage, strict=False):  # depth d runs the first d blocks
                x = block(x, spec.kernel_size, spec.expand_ratio)
        return self.head(x)

    def sort_channels(self) -> None:
        for blocks in self.stages:
            for block in blocks:
                block.sort_channels()

    @torch.no_grad()
    def extract(self, arch: ArchSpec) -> SubNet:
        """A plain nn.Module with copied weights computing what this supernet computes for `arch`."""
        self.space.validate(arch)
        stem, head = Stem(self.space), Head(self.space)
        stem.load_state_dict(self.stem.state_dict())
        head.load_state_dict(self.head.state_dict())
        blocks = [self.stages[s][b].to_static(spec.kernel_size, spec.expand_ratio)
                  for s, stage in enumerate(arch.stages) for b, spec in enumerate(stage)]
        subnet = SubNet(stem, blocks, head)
        subnet.train(self.training)
        return subnet
