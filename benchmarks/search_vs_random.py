"""DEAP search against the random-search baseline with the same number of predictor
evaluations, on the shipped supernet's predictor and a device's LUT, over several seeds
and budgets.

    python benchmarks/search_vs_random.py --device cpu-onnxruntime
writes benchmarks/results/search_vs_random_<device>.json
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from evolve import load_predictor, random_search, search
from hwofa import pipeline
from supernet import load_supernet


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu-onnxruntime")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    run = pipeline.supernet_dir(None)
    net, _ = load_supernet(run)
    predictor = load_predictor(run, net.space)
    table, _, _ = pipeline.profile(args.device)
    lo, hi = table.min_latency()[0], table.predict(net.space.largest())
    rows = []
    for frac in (0.1, 0.3, 0.6):
        budget = lo + frac * (hi - lo)
        for seed in range(args.seeds):
            ea = search(net.space, predictor, table, budget, random.Random(seed))
            rnd = random_search(net.space, predictor, table, budget, random.Random(seed), samples=ea.evaluations)
            rows.append({"budget_ms": budget, "seed": seed, "ea_top1": ea.predicted_top1, "ea_seconds": ea.seconds,
                         "random_top1": rnd.predicted_top1, "random_seconds": rnd.seconds,
                         "evaluations": ea.evaluations})
    gain = np.array([r["ea_top1"] - r["random_top1"] for r in rows])
    result = {"device": args.device, "min_latency_ms": lo, "largest_latency_ms": hi,
              "mean_gain_predicted_top1": float(gain.mean()), "ea_wins": int((gain > 0).sum()),
              "ties": int((gain == 0).sum()), "runs": len(rows),
              "mean_ea_seconds": float(np.mean([r["ea_seconds"] for r in rows])), "rows": rows}
    out = Path(__file__).parent / "results" / f"search_vs_random_{args.device}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"EA beats random search in {result['ea_wins']}/{len(rows)} runs (ties {result['ties']}), mean gain "
          f"{100 * gain.mean():.2f} points of predicted top-1, EA {result['mean_ea_seconds']:.1f} s/search -> {out}")


if __name__ == "__main__":
    main()
