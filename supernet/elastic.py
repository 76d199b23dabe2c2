"""Elastic operators: weights sized for the largest choice, sliced for the active one.

- kernel size: the largest depthwise kernel is centre-cropped, and each step down
  (7 -> 5 -> 3) goes through a learned kernel-transform matrix (OFA's elastic kernel);
- expand ratio: hidden channels are the first `in * e` of the widest block, kept in
  importance order by `ElasticBlock.sort_channels`;
- batch norm: the first C statistics and affine parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from supernet.layers import MBBlock, activation, se_channels


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose statistics and affine parameters are sliced to the input width."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        training = self.training or self.running_mean is None
        # slices are views: batch statistics update the leading entries in place
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            training, self.momentum, self.eps)


class ElasticDepthwise(nn.Module):
    """Depthwise conv with elastic kernel size through kernel-transform matrices."""

    def __init__(self, channels: int, kernel_sizes: tuple[int, ...], stride: int) -> None:
        super().__init__()
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        kmax = self.kernel_sizes[-1]
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(channels, 1, kmax, kmax))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        # one matrix per step down, e.g. "5": 25x25 for 7->5, "3": 9x9 for 5->3; identity at start
        self.transforms = nn.ParameterDict(
            {str(k): nn.Parameter(torch.eye(k * k)) for k in self.kernel_sizes[:-1]})

    def kernel(self, kernel_size: int, channels: int) -> torch.Tensor:
        w = self.weight[:channels]
        for k in reversed(self.kernel_sizes[:-1]):
            if k < kernel_size:
                break
            start = (w.shape[-1] - k) // 2
            w = w[:, :, start:start + k, start:start + k]
            w = (w.reshape(channels, k * k) @ self.transforms[str(k)]).reshape(channels, 1, k, k)
        return w

    def forward(self, x: torch.Tensor, kernel_size: int) -> torch.Tensor:
        c = x.shape[1]
        return F.conv2d(x, self.kernel(kernel_size, c), None, self.stride, kernel_size // 2, 1, c)


class ElasticSE(nn.Module):
    def __init__(self, max_channels: int) -> None:
        super().__init__()
        squeezed = se_channels(max_channels)
        self.reduce = nn.Conv2d(max_channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, max_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        sq = se_channels(c)
        s = x.mean((2, 3), keepdim=True)
        s = torch.relu(F.conv2d(s, self.reduce.weight[:sq, :c], self.reduce.bias[:sq]))
        s = F.conv2d(s, self.expand.weight[:c, :sq], self.expand.bias[:c])
        return x * F.hardsigmoid(s)


class ElasticBlock(nn.Module):
    """Inverted residual block with elastic kernel size and expand ratio."""

    def __init__(self, in_ch: int, out_ch: int, kernel_sizes: tuple[int, ...], expand_ratios: tuple[int, ...],
                 stride: int, use_se: bool, act: str) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride
        self.use_se, self.act_name = use_se, act
        max_mid = in_ch * max(expand_ratios)
        self.expand_conv = nn.Conv2d(in_ch, max_mid, 1, bias=False)
        self.expand_bn = ElasticBatchNorm2d(max_mid)
        self.dw = ElasticDepthwise(max_mid, kernel_sizes, stride)
        self.dw_bn = ElasticBatchNorm2d(max_mid)
        self.se = ElasticSE(max_mid) if use_se else None
        self.project_conv = nn.Conv2d(max_mid, out_ch, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_ch)
        self.act = activation(act)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor, kernel_size: int, expand_ratio: int) -> torch.Tensor:
        mid = self.in_ch * expand_ratio
        y = self.act(self.expand_bn(F.conv2d(x, self.expand_conv.weight[:mid])))
        y = self.act(self.dw_bn(self.dw(y, kernel_size)))
        if self.se is not None:
            y = self.se(y)
        y = self.project_bn(F.conv2d(y, self.project_conv.weight[:, :mid]))
        return x + y if self.residual else y

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Reorder hidden channels by importance (L1 of project weights), most important first."""
        order = self.project_conv.weight.abs().sum(dim=(0, 2, 3)).argsort(descending=True)
        self.expand_conv.weight.copy_(self.expand_conv.weight[order])
        for bn in (self.expand_bn, self.dw_bn):
            _permute_bn(bn, order)
        self.dw.weight.copy_(self.dw.weight[order])
        self.project_conv.weight.copy_(self.project_conv.weight[:, order])
        if self.se is not None:
            se = self.se
            se.reduce.weight.copy_(se.reduce.weight[:, order])
            se.expand.weight.copy_(se.expand.weight[order])
            se.expand.bias.copy_(se.expand.bias[order])
            sq_order = se.expand.weight.abs().sum(dim=(0, 2, 3)).argsort(descending=True)
            se.reduce.weight.copy_(se.reduce.weight[sq_order])
            se.reduce.bias.copy_(se.reduce.bias[sq_order])
            se.expand.weight.copy_(se.expand.weight[:, sq_order])

    @torch.no_grad()
    def to_static(self, kernel_size: int, expand_ratio: int) -> MBBlock:
        """A plain MBBlock whose output equals this block's with (kernel_size, expand_ratio) active."""
        mid = self.in_ch * expand_ratio
        block = MBBlock(self.in_ch, self.out_ch, kernel_size, expand_ratio, self.stride, self.use_se,
                        self.act_name)
        block.expand[0].weight.copy_(self.expand_conv.weight[:mid])
        _copy_bn(block.expand[1], self.expand_bn, mid)
        block.depthwise[0].weight.copy_(self.dw.kernel(kernel_size, mid))
        _copy_bn(block.depthwise[1], self.dw_bn, mid)
        if self.se is not None:
            sq = se_channels(mid)
            block.se.reduce.weight.copy_(self.se.reduce.weight[:sq, :mid])
            block.se.reduce.bias.copy_(self.se.reduce.bias[:sq])
            block.se.expand.weight.copy_(self.se.expand.weight[:mid, :sq])
            block.se.expand.bias.copy_(self.se.expand.bias[:mid])
        block.project[0].weight.copy_(self.project_conv.weight[:, :mid])
        _copy_bn(block.project[1], self.project_bn, self.out_ch)
        return block


def _permute_bn(bn: nn.BatchNorm2d, order: torch.Tensor) -> None:
    for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        t.copy_(t[order])


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, c: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).copy_(getattr(src, name)[:c])
    dst.eps, dst.momentum = src.eps, src.momentum
