"""Batch-norm recalibration and evaluation for extracted subnets."""

from __future__ import annotations

import torch
from torch import nn

from hwofa.common.errors import UserError
from supernet.data import Dataset, preprocess, train_val_split
from supernet.meta import DatasetInfo, SupernetMeta
from supernet.space import ArchSpec


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: torch.Tensor, resolution: int, mean: list[float],
                   std: list[float], batch_size: int = 500) -> nn.Module:
    """Replace every BN layer's running statistics by exact averages over `images` (uint8).

    Runs on the device the model's weights are on; `images` may stay on the CPU.
    """
    dev = _device(model)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.to(memory_format=torch.channels_last).train()  # depthwise convs run ~2x faster on CPU
    for i in range(0, len(images), batch_size):
        model(_cl(preprocess(images[i:i + batch_size].to(dev), resolution, mean, std)))
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    return model.eval()


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, resolution: int, mean: list[float],
                   std: list[float], batch_size: int = 1000) -> torch.Tensor:
    """Logits (on the CPU) of `model` on uint8 `images`, run on the model's device."""
    dev = _device(model)
    model.to(memory_format=torch.channels_last).eval()
    outs = [model(_cl(preprocess(images[i:i + batch_size].to(dev), resolution, mean, std))).cpu()
            for i in range(0, len(images), batch_size)]
    return torch.cat(outs)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _cl(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(1) == labels).float().mean().item()


def check_dataset(dataset: DatasetInfo, data: Dataset) -> None:
    """Refuse a dataset other than the one the supernet was trained on (splits, BN and top-1 depend on it)."""
    want = dataset.sha256
    if want is not None and data.fingerprint() != want:
        raise UserError(f"dataset '{data.name}' found here (sha256 {data.fingerprint()[:12]}…) is not the one this "
                        f"supernet was trained on (sha256 {want[:12]}…); pass --data-dir pointing at the original "
                        "files.")


def calibration_images(meta: SupernetMeta, data: Dataset) -> torch.Tensor:
    """The images BN is recalibrated on: the first `bn_calib_images` of the training split."""
    ds = meta.dataset
    check_dataset(ds, data)
    train_idx, _ = train_val_split(len(data.train_y), ds.val_size, ds.split_seed)
    return data.train_x[train_idx[:meta.bn_calib_images]]


def calibrated_subnet(net: nn.Module, meta: SupernetMeta, data: Dataset, arch: ArchSpec) -> nn.Module:
    """Extract `arch` from a supernet and recalibrate its BN exactly as training's evaluation does."""
    ds = meta.dataset
    return recalibrate_bn(net.extract(arch), calibration_images(meta, data), arch.resolution, list(ds.mean),
                          list(ds.std))
