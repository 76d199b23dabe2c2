"""Search speed at the issue's size (population 100 x 500 generations) and whether the single-budget
search is measurably better at a fixed budget than reading the device's Pareto front.

On the shipped supernet's predictor and cached LUTs (`hwofa.pipeline.profile`, cached under
$HWOFA_HOME, default ~/.cache/hwofa):
- per seed: one front (`search_front`, no latency limit) and one single-budget `search` at each of
  several budgets spread over the first device's range; their wall times and predicted top-1;
- several devices: `search_fronts` over all `--devices` in one run against one `search_front` each.
The machine's load (load average, other pytest processes) is recorded beside the timings.

    python benchmarks/search_speed.py [--devices cpu-onnxruntime,cpu-onnxruntime-int8,fpga-dpu-b4096]
writes benchmarks/results/search_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import wilcoxon

from evolve import load_predictor, search, search_front, search_fronts
from hwofa import pipeline
from supernet import load_supernet

FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8)  # budgets: lo + f * (largest - lo)


def machine_load() -> dict[str, Any]:
    others = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                others += b"pytest" in Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                pass
    return {"loadavg_1m": os.getloadavg()[0], "cpus": os.cpu_count(), "pytest_processes": others}


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def single_vs_front(space: Any, predictor: Any, table: Any, budgets: list[float], seeds: int, size: dict[str, int],
                    rows: list[dict[str, Any]]) -> list[float]:
    """Per seed one front and one single-budget search per budget; returns the front's times."""
    front_times = []
    for seed in range(seeds):
        t_front, front = timed(lambda seed=seed: search_front(space, predictor, table, random.Random(seed), **size))
        front_times.append(t_front)
        print(f"seed {seed}: front {t_front:.2f} s, {len(front.points)} points, {front.evaluations} evaluations")
        for budget in budgets:
            t, res = timed(lambda b=budget, seed=seed: search(space, predictor, table, b, random.Random(seed),
                                                            population=size["population"],
                                                            generations=size["generations"],
                                                            offspring=size["population"]))
            point = front.best_under(budget)
            rows.append({"seed": seed, "budget_ms": budget, "single_top1": res.predicted_top1,
                         "single_latency_ms": res.predicted_latency_ms, "single_seconds": t,
                         "single_evaluations": res.evaluations, "front_top1": point.predicted_top1,
                         "front_latency_ms": point.predicted_latency_ms, "front_seconds": t_front,
                         "front_evaluations": front.evaluations})
            print(f"  budget {budget:.4f} ms: single {res.predicted_top1:.5f} in {t:.2f} s, "
                  f"front {point.predicted_top1:.5f}")
    return front_times


def several_devices(space: Any, predictor: Any, tables: dict[str, Any], repeats: int,
                    size: dict[str, int]) -> dict[str, Any]:
    """`search_fronts` over all devices against one `search_front` per device, same seeds."""
    joint_t, separate_t, one_t, gaps = [], [], [], []
    for seed in range(repeats):
        t, joint = timed(lambda seed=seed: search_fronts(space, predictor, tables, random.Random(seed), **size))
        joint_t.append(t)
        separate_t.append(0.0)
        for d, table in tables.items():
            t_d, alone = timed(lambda table=table, seed=seed: search_front(space, predictor, table,
                                                                          random.Random(seed), **size))
            one_t.append(t_d)
            separate_t[-1] += t_d
            lo, hi = table.min_latency()[0], table.predict(space.largest())
            gaps += [joint[d].best_under(lo + f * (hi - lo)).predicted_top1
                     - alone.best_under(lo + f * (hi - lo)).predicted_top1 for f in FRACTIONS]
        print(f"seed {seed}: {len(tables)} devices together {t:.2f} s, one by one {separate_t[-1]:.2f} s")
    one = statistics.median(one_t)
    return {"devices": list(tables), "joint_seconds_median": statistics.median(joint_t), "joint_seconds": joint_t,
            "one_device_seconds_median": one, "one_device_seconds": one_t,
            "one_by_one_seconds_median": statistics.median(separate_t),
            "joint_over_one": statistics.median(joint_t) / one,
            "joint_minus_alone_top1": {"mean": float(np.mean(gaps)), "min": float(np.min(gaps)),
                                       "max": float(np.max(gaps)), "n": len(gaps)}}


def verdict(rows: list[dict[str, Any]], rmse: float | None) -> dict[str, Any]:
    gain = np.array([r["single_top1"] - r["front_top1"] for r in rows])
    p = float(wilcoxon(gain, zero_method="zsplit").pvalue) if np.any(gain != 0) else 1.0
    measurable = bool(gain.mean() > 0 and p < 0.05)
    relevant = bool(measurable and rmse is not None and gain.mean() > 0.25 * rmse)
    return {"mean_gain_top1": float(gain.mean()), "median_gain_top1": float(np.median(gain)),
            "single_wins": int((gain > 0).sum()), "front_wins": int((gain < 0).sum()), "ties": int((gain == 0).sum()),
            "wilcoxon_p": p, "predictor_rmse": rmse, "single_measurably_better": measurable,
            "gain_above_quarter_of_predictor_rmse": relevant}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", default="cpu-onnxruntime,cpu-onnxruntime-int8,fpga-dpu-b4096",
                    help="comma-separated; the first is the one the budgets and single searches use")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="seeds of the several-device timing")
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--generations", type=int, default=500)
    args = ap.parse_args()
    size = {"population": args.population, "generations": args.generations}
    load_before = machine_load()
    run = pipeline.supernet_dir(None)
    net, _ = load_supernet(run)
    predictor = load_predictor(run, net.space)
    devices = args.devices.split(",")
    tables = {d: pipeline.profile(d, progress=False)[0] for d in devices}
    table = tables[devices[0]]
    lo, hi = table.min_latency()[0], table.predict(net.space.largest())
    budgets = [lo + f * (hi - lo) for f in FRACTIONS]
    rows: list[dict[str, Any]] = []
    front_times = single_vs_front(net.space, predictor, table, budgets, args.seeds, size, rows)
    multi = several_devices(net.space, predictor, tables, args.repeats, size)
    result = {"device": devices[0], **size, "min_latency_ms": lo, "largest_latency_ms": hi,
              "budget_fractions": list(FRACTIONS),
              "single_seconds_median": statistics.median(r["single_seconds"] for r in rows),
              "single_seconds_max": max(r["single_seconds"] for r in rows),
              "front_seconds_median": statistics.median(front_times), "front_seconds_max": max(front_times),
              "single_vs_front": verdict(rows, predictor.report.get("rmse")), "several_devices": multi,
              "load_before": load_before, "load_after": machine_load(), "rows": rows}
    out = Path(__file__).parent / "results" / "search_speed.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    v = result["single_vs_front"]
    print(f"{args.population} x {args.generations}: single-budget search {result['single_seconds_median']:.2f} s "
          f"(max {result['single_seconds_max']:.2f}), front {result['front_seconds_median']:.2f} s; "
          f"{len(devices)} devices together {multi['joint_seconds_median']:.2f} s "
          f"= {multi['joint_over_one']:.2f}x one device. Single minus front: {100 * v['mean_gain_top1']:+.3f} "
          f"points (wins {v['single_wins']}/{len(rows)}, p={v['wilcoxon_p']:.3g}, predictor RMSE "
          f"{100 * (v['predictor_rmse'] or 0):.2f} points) -> {out}")


if __name__ == "__main__":
    main()
