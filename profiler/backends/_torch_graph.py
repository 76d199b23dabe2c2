"""A torch module made ready to time on a GPU, as the deployed ONNX model would run there.

`fold_bn` folds every BatchNorm that directly follows a Conv2d into the conv (what the ONNX export's
constant folding does, so the GPU times the same graph the deployment artefact holds); `prepare`
puts the module in eval mode, folds it, casts it to the precision and to channels_last; `capture`
warms it up on a side stream (cuDNN autotuning picks its kernels there) and captures one forward
pass into a CUDA graph whose replays a DeviceRunner times. Eager PyTorch on nets this small would
time Python's kernel launches, not the GPU.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from profiler.backends._cuda import DeviceRunner

log = logging.getLogger(__name__)

DTYPES = {"fp16": torch.float16, "fp32": torch.float32}
WARMUP_CALLS = 3  # eager calls on the side stream before capture (cuDNN benchmark runs on the first)


def fold_bn(module: nn.Module) -> nn.Module:
    """An eval-mode copy of `module` with each BatchNorm2d that directly follows a Conv2d of its width
    inside an nn.Sequential folded into that conv (the BN becomes Identity)."""
    folded = copy.deepcopy(module).eval()
    left = _fold_into(folded)
    if left:
        log.debug("%d BatchNorm layer(s) not after a conv in a Sequential: left as they are (eval mode)", left)
    return folded


def _fold_into(m: nn.Module) -> int:
    """Fold in place, depth first; returns how many BatchNorms were left unfolded."""
    left = sum(_fold_into(child) for child in m.children())
    if not isinstance(m, nn.Sequential):
        return left + int(isinstance(m, nn.modules.batchnorm._BatchNorm))
    names = list(m._modules)
    for a, b in zip(names, names[1:], strict=False):
        conv, bn = m._modules[a], m._modules[b]
        if _foldable(conv, bn):
            m._modules[a], m._modules[b] = conv_bn(conv, bn), nn.Identity()
            left -= 1
    return left


def _foldable(conv: nn.Module | None, bn: nn.Module | None) -> bool:
    return (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.running_mean is not None
            and bn.running_var is not None and conv.out_channels == bn.num_features)


def conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One conv computing bn(conv(x)) with the BN's running statistics (eval mode), in float64 then cast back."""
    scale = (bn.running_var.double() + bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(shift)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
    with torch.no_grad():
        w = conv.weight.double() * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
        fused.weight.copy_(w.to(conv.weight.dtype))
        fused.bias.copy_((bias * scale + shift).to(conv.weight.dtype))
    return fused.to(conv.weight.device)


def prepare(module: nn.Module, precision: str, device: str | torch.device = "cuda") -> nn.Module:
    """Eval mode, BN folded, at `precision` (fp16/fp32), channels_last, on `device`."""
    if precision not in DTYPES:
        raise ValueError(f"torch-cuda runs {', '.join(DTYPES)}, not {precision}")
    net = fold_bn(module).to(device=device, dtype=DTYPES[precision])
    return net.to(memory_format=torch.channels_last)


def device_input(shape: tuple[int, ...], precision: str, device: str | torch.device = "cuda",
                 seed: int = 0) -> torch.Tensor:
    """A seeded random input resident on `device`, at `precision`, channels_last when 4-D."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g).to(device=device, dtype=DTYPES[precision])
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


@contextlib.contextmanager
def cudnn_autotune() -> Iterator[None]:
    """cuDNN benchmark mode on (it picks the fastest kernel per shape at the first call), restored after."""
    was = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = was


def capture(module: nn.Module, shape: tuple[int, ...], precision: str) -> DeviceRunner:
    """`module` prepared, warmed up on a side stream and captured into a CUDA graph on that stream;
    the runner replays the graph (input resident on the device, no host copies)."""
    net = prepare(module, precision)
    x = device_input(shape, precision)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad():
        with torch.cuda.stream(stream):
            for _ in range(WARMUP_CALLS):
                net(x)
        stream.synchronize()
        with torch.cuda.graph(graph, stream=stream):
            out = net(x)
    stream.synchronize()
    return DeviceRunner(graph.replay, stream, keep=(net, x, out, graph))


def module_runner(module: nn.Module, precision: str):
    """A Runner (numpy in, numpy out) for parity: copies the input to the GPU, runs the prepared module
    eagerly and copies the logits back as float32. Not for timing (it copies)."""
    net = prepare(module, precision)

    def run(x: np.ndarray) -> list[np.ndarray]:
        t = torch.from_numpy(np.ascontiguousarray(x)).to(device="cuda", dtype=DTYPES[precision])
        if t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            y = net(t)
        return [y.float().cpu().numpy()]

    return run
