"""Budget sweep: does `hwofa run` meet the budget across a device's whole range, use it, and
beat uniform scaling?

For `--budgets N` budgets spread over the device's range (its fastest subnet .. its largest
subnet, from the cached LUT), the whole pipeline runs at each (`hwofa run`), and each bundle
is re-measured independently: a plain onnxruntime session on the bundle's model.onnx, timed
by a perf_counter loop (median of 9 rounds spread over ~5 s; benchmarks/_plain.py). Reported:
- compliance: the share of bundles whose independently measured p50 is <= the budget;
- budget use: the median of measured / budget;
- accuracy against the uniform-scaling baseline at the same budget: the uniform subnet (the same
  kernel, expand ratio and depth in every stage, at any resolution) with the largest independently
  measured latency that fits the budget, and its test top-1 (BN recalibrated, 10 000 images).

    python benchmarks/budget_sweep.py --device cpu-onnxruntime --budgets 10
writes benchmarks/results/budget_sweep_<device>.json (bundles under --work, default /tmp/hwofa-sweep).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

import numpy as np
from _plain import plain_session, time_calls  # benchmarks/_plain.py, beside this script

from export import Exporter
from hwofa import pipeline
from profiler import load_profile
from supernet import ArchSpec, BlockSpec, SearchSpace


def plain_p50(model: bytes | str, shape: tuple[int, ...], threads: int, runs: int) -> float:
    run = plain_session(model, "onnxruntime", threads)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return time_calls(lambda: run(x), runs)[0]


def uniform_archs(space: SearchSpace) -> list[ArchSpec]:
    return [ArchSpec(r, tuple((BlockSpec(k, e),) * d for _ in range(space.num_stages)))
            for r, k, e, d in itertools.product(space.resolutions, space.kernel_sizes, space.expand_ratios,
                                                space.depths)]


def measure_uniform(ex: Exporter, runs: int) -> list[dict]:
    """Every uniform subnet's independently measured p50, at the device's precision (the timing needs
    no BN calibration)."""
    space, threads = ex.net.space, ex.profile.threads
    rows = []
    for arch in uniform_archs(space):
        cand = ex.candidate(arch, calibrate=False)
        shape = (ex.profile.batch_size, space.in_channels, arch.resolution, arch.resolution)
        rows.append({"arch": arch, "p50_ms": plain_p50(cand.deployed.model_bytes, shape, threads, runs)})
    return rows


def baseline(ex: Exporter, uniform: list[dict], budget: float) -> dict | None:
    fits = [u for u in uniform if u["p50_ms"] <= budget]
    if not fits:
        return None
    best = max(fits, key=lambda u: u["p50_ms"])
    v = ex.verify(ex.candidate(best["arch"]))
    return {"arch_key": best["arch"].key(), "p50_ms": best["p50_ms"], "top1": v.top1_onnx}


def sweep_one(device: str, budget: float, out: Path, runs: int) -> dict:
    res = pipeline.run(device, budget, out, progress=False)
    meta = json.loads((out / "model.json").read_text())
    shape = tuple(meta["onnx"]["input_shape"])
    p50 = plain_p50(str(out / meta["onnx"]["path"]), shape, meta["runtime"]["threads"], runs)
    acc = meta["accuracy"]
    return {"budget_ms": budget, "arch_key": ArchSpec.from_dict(meta["arch"]).key(), "passed": meta["passed"],
            "claimed_p50_ms": meta["latency_ms"].get("measured_p50"), "independent_p50_ms": p50,
            "use": p50 / budget, "top1": acc.get("top1", acc["top1_onnx"]), "written": res["written"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu-onnxruntime")
    ap.add_argument("--budgets", type=int, default=10)
    ap.add_argument("--runs", type=int, default=1000, help="calls per independent timing (at least; 9 rounds)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/hwofa-sweep"))
    args = ap.parse_args()
    prof = load_profile(args.device)
    table, _, _ = pipeline.profile(args.device)
    lo, hi = table.min_latency()[0], table.predict(table.space.largest())
    budgets = [lo + (hi - lo) * (i + 1) / (args.budgets + 1) for i in range(args.budgets)]
    ex = Exporter(prof)
    uniform = measure_uniform(ex, args.runs // 4)
    rows = []
    for i, budget in enumerate(budgets):
        row = sweep_one(args.device, round(budget, 4), args.work / f"{prof.name}-{i}", args.runs)
        row["uniform"] = baseline(ex, uniform, row["budget_ms"])
        rows.append(row)
        u = row["uniform"]
        print(f"budget {row['budget_ms']:.4f} ms: independent p50 {row['independent_p50_ms']:.4f} ms "
              f"({100 * row['use']:.0f} %), top-1 {row['top1']:.4f}; uniform "
              + (f"{u['top1']:.4f} ({u['arch_key'][:60]})" if u else "none fits"), flush=True)
    gains = [r["top1"] - r["uniform"]["top1"] for r in rows if r["uniform"]]
    result = {"device": prof.name, "range_ms": [lo, hi], "budgets": len(rows),
              "compliance": float(np.mean([r["independent_p50_ms"] <= r["budget_ms"] for r in rows])),
              "median_budget_use": statistics.median(r["use"] for r in rows),
              "vs_uniform": {"compared": len(gains), "at_least_equal": int(sum(g >= 0 for g in gains)),
                             "mean_gain_points": 100 * float(np.mean(gains)) if gains else None},
              "uniform_measured": [{"arch_key": u["arch"].key(), "p50_ms": u["p50_ms"]} for u in uniform],
              "rows": rows}
    path = Path(__file__).parent / "results" / f"budget_sweep_{prof.name}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"compliance {100 * result['compliance']:.0f} %, median budget use {100 * result['median_budget_use']:.0f} %,"
          f" vs uniform: {result['vs_uniform']} -> {path}")


if __name__ == "__main__":
    main()
