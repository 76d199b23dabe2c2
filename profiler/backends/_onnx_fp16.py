"""An fp32 ONNX model as an fp16 one: every float tensor (inputs, outputs, weights, constants, value
infos, casts to float) becomes float16. A strongly typed TensorRT network takes its precision from the
model's types (TensorRT 11 has no FP16 builder flag), so fp16 on TensorRT means an fp16 model.

Float inputs that ONNX requires to stay float32 (Resize's scales) are left as they are. The model
handed to TensorRT is built from the deployment artefact, which stays fp32.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
KEEP_FP32 = {("Resize", 2)}  # (op, input index) that must stay float32


def to_fp16(model: bytes) -> bytes:
    """`model` with its float32 tensors as float16 (idempotent; non-float tensors untouched)."""
    m = onnx.load_from_string(model)
    g = m.graph
    keep = {n.input[i] for n in g.node for op, i in KEEP_FP32 if n.op_type == op and len(n.input) > i}
    for i, t in enumerate(g.initializer):
        if t.data_type == FLOAT and t.name not in keep:
            g.initializer[i].CopyFrom(_half(t))
    for node in g.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == FLOAT:
                attr.t.CopyFrom(_half(attr.t))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == FLOAT:
                attr.i = HALF
    for info in [*g.input, *g.output, *g.value_info]:
        tt = info.type.tensor_type
        if tt.elem_type == FLOAT and info.name not in keep:
            tt.elem_type = HALF
    return m.SerializeToString(deterministic=True)


def _half(t: TensorProto) -> TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name)


def float_types(model: bytes) -> set[int]:
    """The float element types (FLOAT, FLOAT16, ...) of a model's inputs, outputs and initializers."""
    g = onnx.load_from_string(model).graph
    floats = {FLOAT, HALF, TensorProto.BFLOAT16, TensorProto.DOUBLE}
    types = {i.type.tensor_type.elem_type for i in [*g.input, *g.output]} | {t.data_type for t in g.initializer}
    return types & floats
