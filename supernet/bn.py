"""Batch-norm recalibration and evaluation for extracted subnets."""

from __future__ import annotations

import torch
from torch import nn

from supernet.data import preprocess


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: torch.Tensor, resolution: int, mean: list[float],
                   std: list[float], batch_size: int = 500) -> nn.Module:
    """Replace every BN layer's running statistics by exact averages over `images` (uint8)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    for i in range(0, len(images), batch_size):
        model(preprocess(images[i:i + batch_size], resolution, mean, std))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    return model.eval()


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, resolution: int, mean: list[float],
                   std: list[float], batch_size: int = 1000) -> torch.Tensor:
    model.eval()
    outs = [model(preprocess(images[i:i + batch_size], resolution, mean, std))
            for i in range(0, len(images), batch_size)]
    return torch.cat(outs)


def top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(1) == labels).float().mean().item()
