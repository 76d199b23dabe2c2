"""Re-measure a bundle's claims without hwofa's own code paths, the way a user would.

Reads only `model.json` and `model.onnx`; loads the Fashion-MNIST test split from the IDX
files with numpy, preprocesses each image with pillow exactly as `model.json`'s
`preprocess` block describes, runs onnxruntime with the runtime settings it records, then
compares top-1 (the shipped model's: int8 for an int8 device) and a plain perf_counter latency
loop (9 rounds spread over ~5 s, median of the round medians) against the bundle's figures.
A modelled bundle (a cost-model device) has no measured latency to compare: its figure is
reproduced by benchmarks/zigzag_reproduce.py instead.

    python benchmarks/reverify_bundle.py out [--data-dir /usr/share/datasets/fashion-mnist]
writes benchmarks/results/reverify_bundle_<device>.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image


def read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def preprocess(images: np.ndarray, pre: dict) -> np.ndarray:
    r = pre["resolution"]
    out = np.empty((len(images), 1, r, r), dtype=np.float32)
    for i, img in enumerate(images):
        f = Image.fromarray(img.astype(np.float32) * np.float32(pre["scale"]), mode="F")
        if f.size != (r, r):
            f = f.resize((r, r), Image.BILINEAR)
        out[i, 0] = np.asarray(f)
    return (out - np.float32(pre["mean"][0])) / np.float32(pre["std"][0])


ROUNDS, ROUND_S, GAP_S = 9, 0.2, 0.3  # rounds spread over ~5 s: one burst of outside load cannot own the median


def time_plain(sess: ort.InferenceSession, name: str, one: np.ndarray, runs: int) -> tuple[float, list[float]]:
    """Median of 9 rounds' medians of a plain perf_counter loop, the rounds spread over ~5 s."""
    return time_calls(lambda: sess.run(None, {name: one}), runs)


def time_calls(call, runs: int) -> tuple[float, list[float]]:
    """A plain timer: 200 warm-up calls, then ROUNDS rounds of >= runs/ROUNDS calls and >= ROUND_S seconds,
    GAP_S apart; the median of the round medians (no canary, no disturbance detection)."""
    for _ in range(200):
        call()
    rounds = []
    for _ in range(ROUNDS):
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < runs // ROUNDS or time.perf_counter() - start < ROUND_S:
            t = time.perf_counter()
            call()
            times.append((time.perf_counter() - t) * 1e3)
        rounds.append(statistics.median(times))
        time.sleep(GAP_S)
    return statistics.median(rounds), rounds


def openvino_call(path: Path, runtime: dict, one: np.ndarray):
    """The bundle's model on plain OpenVINO with the runtime settings model.json records (f32 unless it says
    otherwise: this CPU would run fp32 models in bf16 by default)."""
    import openvino as ov

    hint = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "f32"}[runtime.get("precision", "fp32")]
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                         "INFERENCE_NUM_THREADS": runtime["threads"],
                                                         "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    return lambda: request.infer({0: one})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--runs", type=int, default=2000)
    args = ap.parse_args()
    bundle = Path(args.bundle)
    meta = json.loads((bundle / "model.json").read_text())
    data = Path(args.data_dir)
    x = read_idx(next(data.glob("t10k-images-idx3-ubyte*")))
    y = read_idx(next(data.glob("t10k-labels-idx1-ubyte*")))
    inputs = preprocess(x, meta["preprocess"])

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = meta["runtime"]["threads"]
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(bundle / meta["onnx"]["path"]), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    pred = np.concatenate([sess.run(None, {name: inputs[i:i + 500]})[0].argmax(1) for i in range(0, len(y), 500)])
    top1 = float((pred == y).mean())

    acc, lat = meta["accuracy"], meta["latency_ms"]
    claimed = acc.get("top1", acc["top1_onnx"])  # the shipped model's top-1 (int8 where the device runs int8)
    result = {"bundle": str(bundle), "device": meta["device"], "precision": meta.get("precision", "fp32"),
              "claimed_top1": claimed, "remeasured_top1": top1, "top1_diff": top1 - claimed,
              "top1_fp32": (meta.get("quantization") or {}).get("top1_fp32", acc["top1_onnx"]),
              "budget_ms": lat["budget"],
              "latency_source": lat.get("source")}
    if "measured_p50" in lat:
        if meta["runtime"]["name"] == "openvino":
            p50, rounds = time_calls(openvino_call(bundle / meta["onnx"]["path"], meta["runtime"], inputs[:1]),
                                     args.runs)
        else:
            p50, rounds = time_plain(sess, name, inputs[:1], args.runs)
        result.update({"timed_with": f"plain {meta['runtime']['name']}", "claimed_p50_ms": lat["measured_p50"],
                       "remeasured_p50_ms": round(p50, 4),
                       "round_p50s_ms": [round(r, 4) for r in rounds], "within_budget": p50 <= lat["budget"],
                       "p50_ratio_to_claim": round(p50 / lat["measured_p50"], 3)})
    else:
        result["modelled_ms"] = lat.get("modelled")
    print(json.dumps(result, indent=2))
    path = Path(__file__).parent / "results" / f"reverify_bundle_{meta['device']}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
