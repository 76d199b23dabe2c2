"""Independent check of a device's calibrated LUT: fresh random subnets (a seed the
calibration never used), each exported and measured end to end with the timing routine in
an interleaved random order, against the LUT's prediction.

    python benchmarks/lut_fidelity.py --device cpu-onnxruntime --subnets 50
writes benchmarks/results/lut_fidelity_<device>.json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from hwofa import pipeline
from profiler import get_backend, load_profile
from profiler.build import subnet_for, time_module
from profiler.calibration import fidelity
from supernet import load_supernet


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu-onnxruntime")
    ap.add_argument("--subnets", type=int, default=50)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--supernet")
    args = ap.parse_args()
    prof = load_profile(args.device)
    net, _ = load_supernet(pipeline.supernet_dir(args.supernet))
    table, path, _ = pipeline.profile(args.device, args.supernet)
    rng = random.Random(args.seed)
    archs = [net.space.sample(rng) for _ in range(args.subnets)]
    backend = get_backend(prof.backend)
    t0 = time.time()
    rows = []
    for arch in archs:
        shape = (1, net.space.in_channels, arch.resolution, arch.resolution)
        t = time_module(subnet_for(net.space, arch), shape, prof, backend)
        rows.append({"arch": arch.to_dict(), "predicted_ms": table.predict(arch), "raw_sum_ms": table.raw_ms(arch),
                     "measured_p50_ms": t.p50_ms, "cv": t.cv})
    pred = np.array([r["predicted_ms"] for r in rows])
    meas = np.array([r["measured_p50_ms"] for r in rows])
    raw = np.array([r["raw_sum_ms"] for r in rows])
    result = {"device": args.device, "lut": str(path), "subnets": len(rows), "seed": args.seed,
              "seconds": round(time.time() - t0, 1), "calibrated": fidelity(pred, meas),
              "uncalibrated_sum": fidelity(raw, meas), "lut_reported_fidelity": table.calibration["fidelity"],
              "runtime": table.header["runtime"], "host": table.header["host"], "rows": rows}
    out = Path(__file__).parent / "results" / f"lut_fidelity_{args.device}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    c = result["calibrated"]
    print(f"{args.device}: {len(rows)} fresh subnets, calibrated LUT within ±10 %: {100 * c['within_10pct']:.0f} %, "
          f"mean abs error {c['mean_abs_pct_error']:.1f} %, max {c['max_abs_pct_error']:.1f} %, "
          f"Spearman {c['spearman']:.3f} (uncalibrated sum: {100 * result['uncalibrated_sum']['within_10pct']:.0f} % "
          f"within ±10 %) -> {out}")


if __name__ == "__main__":
    main()
