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
from pathlib import Path

import numpy as np
from _plain import plain_session, time_calls  # benchmarks/_plain.py, beside this script
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

    model, rt = str(bundle / meta["onnx"]["path"]), meta["runtime"]
    reference = plain_session(model, "onnxruntime", rt["threads"])  # top-1 on the reference runtime
    pred = np.concatenate([reference(inputs[i:i + 500])[0].argmax(1) for i in range(0, len(y), 500)])
    top1 = float((pred == y).mean())

    acc, lat = meta["accuracy"], meta["latency_ms"]
    claimed = acc.get("top1", acc["top1_onnx"])  # the shipped model's top-1 (int8 where the device runs int8)
    result = {"bundle": str(bundle), "device": meta["device"], "precision": meta.get("precision", "fp32"),
              "claimed_top1": claimed, "remeasured_top1": top1, "top1_diff": top1 - claimed,
              "top1_fp32": (meta.get("quantization") or {}).get("top1_fp32", acc["top1_onnx"]),
              "budget_ms": lat["budget"],
              "latency_source": lat.get("source")}
    if "measured_p50" in lat:
        run = plain_session(model, rt["name"], rt["threads"], rt.get("precision", "fp32"))
        one = inputs[:1]
        p50, rounds = time_calls(lambda: run(one), args.runs)
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
