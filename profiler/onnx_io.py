"""torch module -> ONNX bytes, the one way every stage exports (legacy exporter, no onnxscript)."""

from __future__ import annotations

import io
import warnings

import torch
from torch import nn

OPSET = 17


def to_onnx(module: nn.Module, input_shape: tuple[int, ...], dynamic_batch: bool = False,
            opset: int = OPSET) -> bytes:
    """Export `module` in eval mode for an input of `input_shape`; returns the serialized model."""
    module = module.eval()
    buf = io.BytesIO()
    dynamic = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(input_shape),), buf, input_names=["input"],
                          output_names=["logits"], opset_version=opset, dynamic_axes=dynamic,
                          do_constant_folding=True, dynamo=False)
    return buf.getvalue()
