"""ONNX -> ZigZag layers: our own walker, so every op of the model is costed (or named as fused).

ZigZag's own ONNX flow turns only Conv, Gemm and MatMul into layers and costs everything else at
zero. Here every op becomes one of:

- a MAC layer (`conv`, `depthwise`, `gemm`) in the same loop form ZigZag's parser would give it;
- a channel-wise layer costed on the accelerator like any other: `add`/`mul` (element-wise with a
  second tensor; the SE multiply's scale is broadcast over the pixels), `activation` (hard-swish,
  hard-sigmoid, sigmoid...: one op per element with a per-channel constant), `pool` (global mean,
  average/max pooling);
- nothing, for ops an int8 accelerator fuses into the neighbouring layer's read or write-back and
  that move no data of their own: QuantizeLinear/DequantizeLinear (requantisation at write-back),
  ReLU/Clip (clamping at write-back; onnxruntime's QDQ quantizer already removes them), and
  layout-only views (Identity, Flatten, Reshape, Squeeze, Unsqueeze). They are counted in `fused`.

Any other op is a UserError naming it: nothing is silently free. Int8 QDQ graphs are read by looking
through Q/DQ pairs; a plain fp32 graph gives the same layers (the accelerator runs int8 either way).
Each layer's `mapping` names the mapping entry it uses (ZigZag matches a layer's name first).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import onnx
from onnx import helper, numpy_helper, shape_inference

from hwofa.common import UserError

PRECISION = {"W": 8, "I": 8, "O": 16, "O_final": 8}  # int8 operands, 16-bit partial sums (ZigZag's default)
QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
VIEW_OPS = {"Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze"}
FUSED_OPS = {"Relu", "Clip"}
UNARY_OPS = {"HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "LeakyRelu", "BatchNormalization"}
BINARY_OPS = {"Add": "add", "Sub": "add", "Mul": "mul", "Div": "mul"}
POOL_OPS = {"GlobalAveragePool", "ReduceMean", "AveragePool", "MaxPool", "GlobalMaxPool"}
MAPPING_NAMES = ("default", "depthwise", "elementwise", "pooling")  # entries every mapping file must have


@dataclass(frozen=True)
class Layer:
    """One costed layer: its kind (for the per-type totals), the mapping entry it uses, ZigZag's loop form."""

    kind: str
    mapping: str
    spec: dict[str, Any]
    node: str = ""

    @property
    def key(self) -> str:
        """What the cost depends on (shape, op type, mapping entry), not the node's name."""
        return json.dumps({"mapping": self.mapping, **self.spec}, sort_keys=True, separators=(",", ":"))

    def workload(self, layer_id: int = 0) -> dict[str, Any]:
        """The layer as ZigZag's workload parser takes it (operands of a lone layer count as constant)."""
        return {"id": layer_id, "name": self.mapping, **self.spec,
                "operand_source": {"W": layer_id, "I": layer_id}}


@dataclass
class Graph:
    layers: list[Layer] = field(default_factory=list)
    fused: dict[str, int] = field(default_factory=dict)


def onnx_layers(model: bytes | onnx.ModelProto, batch: int = 1) -> Graph:
    """Every layer of an ONNX model (int8 QDQ or fp32) in graph order."""
    proto = onnx.load_from_string(model) if isinstance(model, bytes) else model
    walker = _Walker(_with_shapes(proto, batch))
    for i, node in enumerate(walker.model.graph.node):
        walker.visit(i, node)
    return walker.graph


def _with_shapes(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A copy with a fixed batch size and every tensor's shape inferred."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for inp in model.graph.input:
        for d in inp.type.tensor_type.shape.dim:
            if d.dim_value <= 0:
                d.Clear()
                d.dim_value = batch
    try:
        return shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:  # onnx raises its own InferenceError/ValidationError types
        raise UserError(f"the zigzag target cannot read this ONNX model: shape inference failed ({exc}).") from exc


class _Walker:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = Graph()
        g = model.graph
        self.shapes: dict[str, list[int]] = {i.name: list(i.dims) for i in g.initializer}
        for vi in (*g.input, *g.value_info, *g.output):
            self.shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        self.consts = {i.name for i in g.initializer} | {n.output[0] for n in g.node if n.op_type == "Constant"}
        self.alias: dict[str, str] = {}
        self.hswish = _decomposed_hardswish(g.node)

    # ---- tensors ---------------------------------------------------------------
    def root(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def shape(self, name: str, node: onnx.NodeProto) -> list[int]:
        shape = self.shapes.get(name)
        if not shape or any(d <= 0 for d in shape):
            raise UserError(f"the zigzag target needs static shapes: tensor '{name}' of node '{node.name}' "
                            f"({node.op_type}) has shape {shape}; export with a fixed input shape.")
        return shape

    def is_const(self, name: str) -> bool:
        return self.root(name) in self.consts

    # ---- nodes -----------------------------------------------------------------
    def visit(self, index: int, node: onnx.NodeProto) -> None:
        op = node.op_type
        if index in self.hswish:  # x * HardSigmoid(x): one hard-swish, costed once (at the Mul)
            if op == "Mul":
                self.graph.layers.append(_channelwise("activation", self.shape(node.output[0], node), None, node.name))
            return
        if op in QDQ_OPS or op in VIEW_OPS or op in FUSED_OPS:
            if node.input and node.input[0]:
                self.alias[node.output[0]] = node.input[0]
                if self.is_const(node.input[0]):
                    self.consts.add(node.output[0])
            if not (op in QDQ_OPS and self.is_const(node.input[0])):
                self.graph.fused[op] = self.graph.fused.get(op, 0) + 1
            return
        if op == "Constant":
            return
        layer = self.layer_for(node)
        self.graph.layers.append(layer)

    def layer_for(self, node: onnx.NodeProto) -> Layer:
        op = node.op_type
        if op == "Conv":
            return self.conv(node)
        if op in ("Gemm", "MatMul"):
            return self.gemm(node)
        if op in BINARY_OPS:
            return self.binary(node)
        if op in UNARY_OPS:
            return _channelwise("activation", self.shape(node.output[0], node), None, node.name)
        if op in POOL_OPS:
            return self.pool(node)
        raise UserError(f"the zigzag target cannot cost ONNX op '{op}' (node '{node.name}'): it costs Conv, "
                        "Gemm, MatMul, element-wise Add/Sub/Mul/Div, activations (HardSwish, HardSigmoid, "
                        "Sigmoid, Tanh, LeakyRelu), pooling (GlobalAveragePool, ReduceMean, AveragePool, MaxPool) "
                        "and treats Q/DQ, Relu/Clip and reshapes as fused.")

    def conv(self, node: onnx.NodeProto) -> Layer:
        a = _attrs(node)
        x, w, y = (self.shape(node.input[0], node), self.shape(node.input[1], node),
                   self.shape(node.output[0], node))
        group = int(a.get("group", 1))
        kh, kw = a.get("kernel_shape", w[2:])
        sh, sw = a.get("strides", [1, 1])
        dh, dw = a.get("dilations", [1, 1])
        ph0, pw0, ph1, pw1 = a.get("pads", [0, 0, 0, 0])
        depthwise = group > 1 and x[1] == group
        spec = {"operator_type": "Conv",
                "equation": "O[b][g][k][oy][ox]+=W[g][k][c][fy][fx]*I[b][g][c][iy][ix]",
                "dimension_relations": [f"ix={sw}*ox+{dw}*fx", f"iy={sh}*oy+{dh}*fy"],
                "loop_dims": ["B", "K", "G", "OX", "OY", "C", "FX", "FY"],
                "loop_sizes": [y[0], y[1] // group, group, y[3], y[2], x[1] // group, kw, kh],
                "operand_precision": PRECISION,
                "pr_loop_dims": ["IX", "IY"], "pr_loop_sizes": [x[3], x[2]],
                "padding": [[pw0, pw1], [ph0, ph1]]}
        return Layer("depthwise" if depthwise else "conv", "depthwise" if depthwise else "Conv", spec, node.name)

    def gemm(self, node: onnx.NodeProto) -> Layer:
        a = _attrs(node)
        x, y = self.shape(node.input[0], node), self.shape(node.output[0], node)
        if len(x) != 2 or not self.is_const(node.input[1]):
            raise UserError(f"the zigzag target costs {node.op_type} with a 2-D input and constant weights; node "
                            f"'{node.name}' has input shape {x}.")
        c = x[0] if a.get("transA", 0) else x[1]
        spec = {"operator_type": "Gemm", "equation": "O[d][k]+=I[d][c]*W[c][k]", "dimension_relations": [],
                "loop_dims": ["C", "D", "K"], "loop_sizes": [c, y[0], y[1]], "operand_precision": PRECISION}
        return Layer("gemm", "Gemm", spec, node.name)

    def binary(self, node: onnx.NodeProto) -> Layer:
        """x (op) y: a second tensor of the output's shape, a per-channel one (the SE scale), or a constant."""
        out = self.shape(node.output[0], node)
        live = [i for i in node.input if not self.is_const(i)]
        if len(live) < 2:  # x (op) constant: one op per element, like an activation
            return _channelwise("activation", out, None, node.name)
        other = min((self.shape(i, node) for i in live), key=lambda s: _numel(s))
        broadcast = _numel(other) < _numel(out)
        return _channelwise(BINARY_OPS[node.op_type], out, "per-channel" if broadcast else "full", node.name)

    def pool(self, node: onnx.NodeProto) -> Layer:
        x, y = self.shape(node.input[0], node), self.shape(node.output[0], node)
        if len(x) != 4:
            raise UserError(f"the zigzag target costs pooling over NCHW tensors; node '{node.name}' ({node.op_type}) "
                            f"has input shape {x}.")
        if node.op_type in ("AveragePool", "MaxPool"):
            a = _attrs(node)
            kh, kw = a["kernel_shape"]
            sh, sw = a.get("strides", [1, 1])
            ph0, pw0, ph1, pw1 = a.get("pads", [0, 0, 0, 0])
            spec = {"operator_type": "Pooling", "equation": "O[b][g][oy][ox]+=W[fy][fx]*I[b][g][iy][ix]",
                    "dimension_relations": [f"ix={sw}*ox+1*fx", f"iy={sh}*oy+1*fy"],
                    "loop_dims": ["B", "G", "OX", "OY", "FX", "FY"], "loop_sizes": [y[0], y[1], y[3], y[2], kw, kh],
                    "operand_precision": PRECISION, "pr_loop_dims": ["IX", "IY"], "pr_loop_sizes": [x[3], x[2]],
                    "padding": [[pw0, pw1], [ph0, ph1]]}
        else:
            if node.op_type == "ReduceMean" and sorted(_reduce_axes(node, self.model, len(x))) != [2, 3]:
                raise UserError(f"the zigzag target costs ReduceMean over the spatial axes only; node '{node.name}' "
                                "reduces other axes.")
            spec = {"operator_type": "Pooling", "equation": "O[b][g]+=I[b][g][fy][fx]*W[fy][fx]",
                    "dimension_relations": [], "loop_dims": ["B", "G", "FX", "FY"],
                    "loop_sizes": [x[0], x[1], x[3], x[2]], "operand_precision": PRECISION}
        return Layer("pool", "pooling", spec, node.name)


def _decomposed_hardswish(nodes: Any) -> set[int]:
    """Indices of HardSigmoid/Mul pairs that compute x * HardSigmoid(x): onnxruntime's quantization
    pre-processing writes HardSwish that way, and it must cost what the fp32 graph's HardSwish costs."""
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}

    def root(name: str) -> str:
        while name in producer and nodes[producer[name]].op_type in QDQ_OPS:
            name = nodes[producer[name]].input[0]
        return name

    pairs: set[int] = set()
    for i, n in enumerate(nodes):
        if n.op_type != "Mul" or len(n.input) != 2:
            continue
        a, b = (root(x) for x in n.input)
        for x, y in ((a, b), (b, a)):
            h = producer.get(y)
            if h is not None and nodes[h].op_type == "HardSigmoid" and root(nodes[h].input[0]) == x:
                pairs.update((h, i))
    return pairs


def _channelwise(kind: str, out: list[int], second: str | None, node: str) -> Layer:
    """One op per output element on the channel-wise (element-wise) unit: O = I (op) W, where W is a second
    tensor of the same shape (`full`), per channel and broadcast over the pixels (`per-channel`), or a
    per-channel constant (activations, `None`)."""
    b, g = out[0], out[1] if len(out) > 1 else 1
    oy, ox = (out[2], out[3]) if len(out) == 4 else (1, 1)
    w = {"full": "W[b][g][oy][ox]", "per-channel": "W[b][g]", None: "W[g]"}[second]
    spec = {"operator_type": "Add", "equation": f"O[b][g][oy][ox]+=I[b][g][oy][ox]*{w}", "dimension_relations": [],
            "loop_dims": ["B", "G", "OX", "OY"], "loop_sizes": [b, g, ox, oy], "operand_precision": PRECISION}
    return Layer(kind, "elementwise", spec, node)


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _reduce_axes(node: onnx.NodeProto, model: onnx.ModelProto, rank: int) -> list[int]:
    """ReduceMean's axes: an attribute before opset 18, a constant input after."""
    axes = _attrs(node).get("axes")
    if axes is None and len(node.input) > 1:
        init = {i.name: i for i in model.graph.initializer}
        axes = numpy_helper.to_array(init[node.input[1]]).tolist() if node.input[1] in init else None
    return [a % rank for a in (axes if axes is not None else range(rank))]


def macs(layer: Layer) -> int:
    """Multiply-accumulates (or element ops) of a layer: the product of its loop sizes."""
    return _numel(layer.spec["loop_sizes"])
