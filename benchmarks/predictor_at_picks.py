"""Predictor error where it matters: at the subnets the search picks. A search favours archs whose
prediction came out high, so its picks' predictions are optimistic (the winner's curse); held-out
error on random subnets does not show that.

For the old one-hot MLP (refitted exactly as it was shipped: evolve.fit, seed 0, the first 500
samples) and the shipped predictor: per device (cached LUTs) and seed, one NSGA-II front (as
`hwofa run` searches), read at budgets across the device's range; every distinct pick's validation
top-1 is then measured as the predictor's samples were (BN recalibrated, ONNX on 5000 validation
images). Per predictor: bias (predicted minus measured), RMSE, MAE at its picks, the measured top-1
its picks reach, and how often the shipped predictor's held-out interval holds at them.

From the shipped predictor's distinct picks, an interval at picks: the 5 % and 95 % quantiles of
measured minus predicted top-1; its coverage is measured leaving one device out (quantiles from the
other devices' picks, coverage on this device's). `--record` writes it into the predictor's JSON as
`at_picks`, which model.json's `predicted_val_top1_interval` then uses.

A subnet's measured top-1 depends only on the supernet and the arch, so picks an earlier run on the
same supernet measured (the rows of the results file, which records the supernet's sha256) are not
measured again.

    python benchmarks/predictor_at_picks.py [--devices cpu-onnxruntime,fpga-dpu-b4096] [--seeds 3] [--record]
writes benchmarks/results/predictor_at_picks.json (figures in points of top-1)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evolve import fit, load_predictor, search_front
from evolve.measure import measure_archs
from hwofa import pipeline
from hwofa.common import atomic_write_json, read_json
from supernet import ArchSpec, load_supernet

FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 0.95)  # budgets: lo + f * (largest - lo)
COVERAGE = 0.9


def meta_sha(run: Path) -> str:
    return read_json(run / "accuracy_predictor.json", "accuracy predictor")["weights_sha256"]


def measured_before(out: Path, supernet_sha256: str) -> dict[str, float]:
    """Measured top-1 by arch (sorted-key JSON) from an earlier results file on the same supernet."""
    old = json.loads(out.read_text()) if out.is_file() else {}
    if old.get("supernet_sha256") != supernet_sha256:
        return {}
    return {json.dumps(r["arch"], sort_keys=True): r["measured_top1"] for r in old.get("rows", [])}


def old_mlp(run: Path, space: Any) -> Any:
    samples = read_json(run / "predictor_samples.json", "predictor samples")["samples"][:500]
    archs = [ArchSpec.from_dict(s["arch"]) for s in samples]
    return fit(space, archs, np.array([s["val_top1"] for s in samples]), torch.Generator().manual_seed(0))


def picks(space: Any, predictors: dict[str, Any], tables: dict[str, Any], seeds: int,
          size: dict[str, int]) -> list[dict[str, Any]]:
    rows = []
    for name, predictor in predictors.items():
        for device, table in tables.items():
            lo, hi = table.min_latency()[0], table.predict(space.largest())
            for seed in range(seeds):
                front = search_front(space, predictor, table, random.Random(seed), **size)
                for f in FRACTIONS:
                    p = front.best_under(lo + f * (hi - lo))
                    rows.append({"predictor": name, "device": device, "seed": seed, "fraction": f,
                                 "budget_ms": lo + f * (hi - lo), "arch": p.arch.to_dict(),
                                 "predicted_latency_ms": p.predicted_latency_ms, "predicted_top1": p.predicted_top1})
                print(f"{name} {device} seed {seed}: front of {len(front.points)} in {front.seconds:.1f} s", flush=True)
    return rows


def summary(rows: list[dict[str, Any]], interval: dict[str, Any] | None) -> dict[str, Any]:
    err = 100 * np.array([r["predicted_top1"] - r["measured_top1"] for r in rows])
    out = {"picks": len(rows), "distinct": len({json.dumps(r["arch"], sort_keys=True) for r in rows}),
           "bias": float(err.mean()), "bias_sd": float(err.std(ddof=1)), "rmse": float(np.sqrt(np.mean(err ** 2))),
           "mae": float(np.mean(np.abs(err))), "optimistic_share": float(np.mean(err > 0)),
           "measured_top1_mean": float(np.mean([100 * r["measured_top1"] for r in rows]))}
    if interval:
        miss = -err / 100
        out["heldout_interval_coverage"] = float(np.mean((miss >= interval["low"]) & (miss <= interval["high"])))
        out["heldout_interval_nominal"] = interval["coverage"]
    return out


def paired_gain(rows: list[dict[str, Any]], a: str, b: str) -> dict[str, Any]:
    """Measured top-1 of predictor a's pick minus b's, for the same device, seed and budget (points)."""
    picked = {(r["predictor"], r["device"], r["seed"], r["fraction"]): r["measured_top1"] for r in rows}
    gain = np.array([100 * (v - picked[(b, *k[1:])]) for k, v in picked.items() if k[0] == a])
    return {"mean": float(gain.mean()), "wins": int((gain > 0).sum()), "ties": int((gain == 0).sum()),
            "losses": int((gain < 0).sum()), "n": len(gain)}


def interval_at_picks(rows: list[dict[str, Any]], weights_sha256: str, source: str) -> dict[str, Any]:
    """Quantiles of measured minus predicted top-1 over the distinct picks, and their coverage measured
    leaving one device out."""
    def distinct(rs: list[dict[str, Any]]) -> dict[str, float]:
        return {json.dumps(r["arch"], sort_keys=True): r["measured_top1"] - r["predicted_top1"] for r in rs}

    def bounds(res: list[float]) -> tuple[float, float]:
        tail = (1 - COVERAGE) / 2
        return tuple(float(q) for q in np.quantile(res, [tail, 1 - tail]))

    every = distinct(rows)
    low, high = bounds(list(every.values()))
    hits, n = 0, 0
    for device in sorted({r["device"] for r in rows}):
        own = distinct([r for r in rows if r["device"] == device])
        lo, hi = bounds([v for k, v in distinct([r for r in rows if r["device"] != device]).items() if k not in own])
        hits += sum(lo <= v <= hi for v in own.values())
        n += len(own)
    res = np.array(list(every.values()))
    return {"coverage": COVERAGE, "low": low, "high": high, "bias": float(-res.mean()), "sd": float(res.std(ddof=1)),
            "n_picks": len(res), "from": source, "measured_coverage": hits / n,
            "measured_on": "each device's picks, the interval from the other devices' picks",
            "predictor_weights_sha256": weights_sha256}


def record(run: Path, at_picks: dict[str, Any]) -> None:
    path = run / "accuracy_predictor.json"
    meta = read_json(path, "accuracy predictor")
    atomic_write_json(path, {**meta, "at_picks": at_picks})
    print(f"recorded at_picks in {path}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", default="cpu-onnxruntime,fpga-dpu-b4096")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--generations", type=int, default=500)
    ap.add_argument("--record", action="store_true", help="write the interval at picks into the predictor's JSON")
    args = ap.parse_args()
    t0 = time.time()
    run = pipeline.supernet_dir(None)
    net, meta = load_supernet(run)
    shipped = load_predictor(run, net.space, meta.weights_sha256)
    predictors = {"mlp_onehot_old": old_mlp(run, net.space), "shipped": shipped}
    tables = {d: pipeline.profile(d, progress=False)[0] for d in args.devices.split(",")}
    size = {"population": args.population, "generations": args.generations}
    rows = picks(net.space, predictors, tables, args.seeds, size)
    out = Path(__file__).parent / "results" / "predictor_at_picks.json"
    measured = measured_before(out, meta.weights_sha256)
    distinct = {json.dumps(r["arch"], sort_keys=True): ArchSpec.from_dict(r["arch"]) for r in rows}
    new = {k: a for k, a in distinct.items() if k not in measured}
    print(f"{len(new)} distinct picks to measure, {len(distinct) - len(new)} measured before", flush=True)
    measured |= dict(zip(new, measure_archs(run, list(new.values())), strict=True))
    for r in rows:
        arch = ArchSpec.from_dict(r["arch"])
        r["measured_top1"] = measured[json.dumps(r["arch"], sort_keys=True)]
        r["other_predictions"] = {n: float(p.predict([arch])[0]) for n, p in predictors.items()}
    interval = shipped.report.get("interval")
    by = {n: summary([r for r in rows if r["predictor"] == n], interval if n == "shipped" else None)
          for n in predictors}
    source = (f"measured top-1 of the search's picks (benchmarks/predictor_at_picks.py: NSGA-II fronts on "
              f"{', '.join(tables)}, {args.seeds} seeds, {len(FRACTIONS)} budgets each)")
    at_picks = interval_at_picks([r for r in rows if r["predictor"] == "shipped"], meta_sha(run), source)
    result = {"supernet_sha256": meta.weights_sha256, "devices": list(tables), "seeds": args.seeds,
              "budget_fractions": list(FRACTIONS), **size,
              "shipped_predictor": shipped.report_summary(), "by_predictor": by, "interval_at_picks": at_picks,
              "shipped_minus_old_measured_top1": paired_gain(rows, "shipped", "mlp_onehot_old"),
              "measured_now": len(new), "loadavg_1m": os.getloadavg()[0], "seconds": round(time.time() - t0),
              "rows": rows}
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    if args.record:
        record(run, at_picks)
    for n, s in by.items():
        cover = (f", held-out interval's coverage {s['heldout_interval_coverage']:.2f}"
                 if "heldout_interval_coverage" in s else "")
        print(f"{n}: {s['picks']} picks ({s['distinct']} distinct): bias {s['bias']:+.3f} points, "
              f"RMSE {s['rmse']:.3f}, measured top-1 {s['measured_top1_mean']:.2f} %{cover}")
    print(f"interval at picks: [{100 * at_picks['low']:+.2f}, {100 * at_picks['high']:+.2f}] points around the "
          f"prediction, coverage leaving one device out {at_picks['measured_coverage']:.2f}")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
