"""Reproduce the zigzag target's figure with ZigZag's own API on the whole model file.

    python benchmarks/zigzag_reproduce.py --onnx model.onnx --device fpga-dpu-b4096 [--expected-ms X]
writes benchmarks/results/zigzag_reproduce_<device>.json (or --out)

Two figures for the same model, accelerator and mapping files:
- ours: `ZigZagTarget.cost` (our ONNX walker, every layer costed through ZigZag's stages, cached);
- ZigZag's: `zigzag.api.get_hardware_performance_zigzag(model, accelerator, mapping, opt="latency",
  lpf_limit=<profile's>)`, ZigZag's own ONNX parser and stage pipeline, nothing of ours in between.

ZigZag's ONNX flow costs only Conv, Gemm and MatMul; every other op (SE multiply, hard-swish,
residual add, pooling) is a zero-cost dummy node. So the like-for-like check compares ZigZag's total
with our subtotal over the same MAC layers (conv, depthwise, gemm), which must agree within ±10 %;
our full figure, which also costs the non-MAC ops, is reported beside it with their share.

What ZigZag's parser is given (written beside the input as `<stem>.zigzag.onnx`, and explained here):
- an int8 QDQ model cannot be parsed as is (a Conv whose input, weight and bias each come out of a
  DequantizeLinear node has three predecessors: "No more than 2 layer predecessors expected"), so the
  Q/DQ pairs are folded away: weights dequantized back to fp32 initializers, activations wired past
  their Q/DQ pair. The layer shapes are unchanged, and ZigZag costs Conv/Gemm as 8-bit either way;
- shapes are inferred (ZigZag's parser needs every tensor's type);
- depthwise Conv nodes are renamed `depthwise`: ZigZag matches a mapping entry by node name, then op
  type, and ONNX has no op type for a depthwise conv, so without the rename they would take the
  dense-conv mapping (near-zero utilisation) while our target maps them through the `depthwise` entry.

With `--expected-ms X` our figure is also checked against X (±10 %), e.g. a figure from model.json.
Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwofa.common import sha256_file  # noqa: E402
from profiler.backends._zigzag_engine import quiet_zigzag  # noqa: E402
from profiler.backends.zigzag import MAC_KINDS, ZigZagTarget  # noqa: E402
from profiler.profiles import load_profile  # noqa: E402

TOLERANCE = 0.10


def dequantize(x: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int) -> np.ndarray:
    """(x - zero) * scale, per tensor or per channel along `axis`."""
    shape = [1] * x.ndim
    if scale.size > 1:
        shape[axis % x.ndim] = -1
    return ((x.astype(np.float32) - zero.astype(np.float32).reshape(shape if zero.size > 1 else []))
            * scale.astype(np.float32).reshape(shape if scale.size > 1 else [])).astype(np.float32)


def strip_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """An equivalent fp32 graph: int8 weights dequantized into fp32 initializers, Q/DQ pairs on activations
    bypassed. Other graphs come back unchanged."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant"}

    def array(name: str):
        if name in inits:
            return numpy_helper.to_array(inits[name])
        return numpy_helper.to_array(consts[name].attribute[0].t)

    alias, keep, new_inits = {}, [], []
    for node in g.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            zero = array(node.input[2]) if len(node.input) > 2 else np.zeros(1)
            w = dequantize(array(node.input[0]), array(node.input[1]), zero, axis)
            new_inits.append(numpy_helper.from_array(w, node.output[0]))
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            alias[node.output[0]] = node.input[0]
        else:
            keep.append(node)
    if not alias and not new_inits:
        return model

    def root(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    for node in keep:
        node.input[:] = [root(i) for i in node.input]
    outputs = [helper.make_tensor_value_info(root(o.name), onnx.TensorProto.FLOAT, None) for o in g.output]
    used = {i for n in keep for i in n.input}
    graph = helper.make_graph(keep, g.name, list(g.input), outputs,
                              [i for i in g.initializer if i.name in used] + new_inits)
    return helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)


def fix_batch(model: onnx.ModelProto, batch: int) -> None:
    """A bundle's model has a dynamic batch axis; ZigZag's parser needs every dimension known."""
    for value in [*model.graph.input, *model.graph.output]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param or dim.dim_value <= 0:
                dim.ClearField("dim_param")
                dim.dim_value = batch


def for_zigzag(path: Path, batch: int = 1) -> Path:
    """The model as ZigZag's parser takes it (see the module docstring), written beside the input."""
    model = strip_qdq(onnx.load(str(path)))
    fix_batch(model, batch)
    for i, node in enumerate(model.graph.node):
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if node.op_type == "Conv" and group > 1:
            node.name = "depthwise"
        elif not node.name:
            node.name = f"{node.op_type}_{i}"
    out = path.with_name(f"{path.stem}.zigzag.onnx")
    onnx.save(shape_inference.infer_shapes(model, strict_mode=True), str(out))
    return out


def zigzag_own(model: Path, target: ZigZagTarget) -> dict:
    """ZigZag's API on the whole file; its dumps go to a temporary folder, its logging is put back."""
    from zigzag.api import get_hardware_performance_zigzag

    cfg = target.config
    with tempfile.TemporaryDirectory() as tmp, quiet_zigzag():
        t0 = time.perf_counter()
        energy, cycles, cmes = get_hardware_performance_zigzag(
            str(model), str(cfg.accelerator), str(cfg.mapping), opt="latency", lpf_limit=cfg.lpf_limit,
            dump_folder=tmp, pickle_filename=f"{tmp}/cmes.pickle", loma_show_progress_bar=False)
        seconds = time.perf_counter() - t0
    layers = [{"name": c.layer.name, "cycles": float(c.latency_total2)} for c, _ in cmes[0][1]]
    return {"cycles": float(cycles), "energy_pj": float(energy), "layers": layers, "seconds": round(seconds, 2)}


def ours(path: Path, target: ZigZagTarget) -> dict:
    t0 = time.perf_counter()
    cost = target.model_cost(path.read_bytes())
    seconds = time.perf_counter() - t0
    mac = sum(c.cycles for layer, c in cost.layers if layer.kind in MAC_KINDS)
    return {"cycles": cost.cycles, "mac_layer_cycles": mac, "ms": target.ms(cost.cycles),
            "non_mac_share": round(1 - mac / cost.cycles, 4) if cost.cycles else 0.0,
            "layers": [{"name": layer.node, "kind": layer.kind, "cycles": c.cycles} for layer, c in cost.layers],
            "seconds": round(seconds, 2)}


def check(name: str, got: float, want: float) -> dict:
    err = abs(got - want) / want if want else float("inf")
    ok = err <= TOLERANCE
    logging.info("%s %s: %.6g vs %.6g (%+.2f %%, tolerance ±%d %%)", "✓" if ok else "✗", name, got, want,
                 100 * (got - want) / want if want else float("inf"), int(100 * TOLERANCE))
    return {"check": name, "ours": got, "reference": want, "rel_error": round(err, 5), "passed": ok}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", required=True, type=Path, help="model file (int8 QDQ or fp32 ONNX)")
    ap.add_argument("--device", required=True, help="a zigzag device profile (name or YAML path)")
    ap.add_argument("--expected-ms", type=float, help="also check our figure against this one (±10 %%)")
    ap.add_argument("--out", type=Path, help="result JSON (default benchmarks/results/zigzag_reproduce_<device>.json)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    profile = load_profile(args.device)
    target = ZigZagTarget(profile)
    ok, why = target.available()
    if not ok:
        logging.error("device '%s' cannot be costed here: %s", profile.name, why)
        return 2
    mine = ours(args.onnx, target)
    zz_model = for_zigzag(args.onnx, profile.batch_size)
    theirs = zigzag_own(zz_model, target)
    logging.info("ours: %.0f cycles = %.5f ms at %g MHz (MAC layers %.0f cycles; non-MAC ops %.1f %% of ours)",
                 mine["cycles"], mine["ms"], target.config.clock_mhz, mine["mac_layer_cycles"],
                 100 * mine["non_mac_share"])
    logging.info("ZigZag's API: %.0f cycles over %d MAC layers (%.1f s)", theirs["cycles"], len(theirs["layers"]),
                 theirs["seconds"])
    checks = [check("MAC-layer cycles, ours vs ZigZag's API", mine["mac_layer_cycles"], theirs["cycles"])]
    if args.expected_ms is not None:
        checks.append(check("latency ms, ours vs --expected-ms", mine["ms"], args.expected_ms))
    out = args.out or Path(__file__).resolve().parent / "results" / f"zigzag_reproduce_{profile.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": str(args.onnx), "model_sha256": sha256_file(args.onnx),
                               "zigzag_model": str(zz_model), "device": profile.name,
                               "target": target.depends_on(), "ours": mine, "zigzag_api": theirs,
                               "checks": checks}, indent=2) + "\n")
    logging.info("wrote %s", out)
    return 0 if all(c["passed"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
