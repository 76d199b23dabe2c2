"""The single-budget DEAP search against two baselines with the same number of predictor evaluations
(distinct archs), all with the same repair, on the shipped supernet's predictor and a device's LUT,
over several seeds and budgets:
- random search: sample, repair, keep the best;
- aging (regularized) evolution, Real et al. 2019: population 100, sample 25, one-gene mutation.
Beside them, the NSGA-II front (no latency limit, so no repair; its own evaluation count, about the
same) read at each budget.

    python benchmarks/search_vs_random.py --device cpu-onnxruntime [--seeds 5] [--generations 500]
writes benchmarks/results/search_vs_random_<device>.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from evolve import aging_evolution, load_predictor, random_search, search, search_front
from hwofa import pipeline
from supernet import load_supernet

AGING = {"population": 100, "sample": 25}


def summary(rows: list[dict[str, Any]], other: str) -> dict[str, Any]:
    gain = np.array([r["ea_top1"] - r[f"{other}_top1"] for r in rows])
    return {"mean_gain_predicted_top1": float(gain.mean()), "ea_wins": int((gain > 0).sum()),
            "ties": int((gain == 0).sum()), "losses": int((gain < 0).sum()),
            f"mean_{other}_seconds": float(np.mean([r[f"{other}_seconds"] for r in rows]))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu-onnxruntime")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--generations", type=int, default=500)
    args = ap.parse_args()
    run = pipeline.supernet_dir(None)
    net, _ = load_supernet(run)
    predictor = load_predictor(run, net.space)
    table, _, _ = pipeline.profile(args.device, progress=False)
    lo, hi = table.min_latency()[0], table.predict(net.space.largest())
    size = {"population": args.population, "generations": args.generations}
    fronts = {s: search_front(net.space, predictor, table, random.Random(s), **size) for s in range(args.seeds)}
    rows = []
    for frac in (0.1, 0.3, 0.6):
        budget = lo + frac * (hi - lo)
        for seed in range(args.seeds):
            ea = search(net.space, predictor, table, budget, random.Random(seed), offspring=args.population, **size)
            n = ea.evaluations
            rnd = random_search(net.space, predictor, table, budget, random.Random(seed), samples=n)
            age = aging_evolution(net.space, predictor, table, budget, random.Random(seed), evaluations=n, **AGING)
            front = fronts[seed]
            rows.append({"budget_ms": budget, "seed": seed, "evaluations": n, "ea_top1": ea.predicted_top1,
                         "ea_seconds": ea.seconds, "random_top1": rnd.predicted_top1, "random_seconds": rnd.seconds,
                         "random_evaluations": rnd.evaluations, "aging_top1": age.predicted_top1,
                         "aging_seconds": age.seconds, "aging_evaluations": age.evaluations,
                         "nsga2_front_top1": front.best_under(budget).predicted_top1,
                         "nsga2_front_seconds": front.seconds, "nsga2_front_evaluations": front.evaluations})
            print(f"budget {budget:.4f} ms seed {seed}: EA {ea.predicted_top1:.5f}, aging {age.predicted_top1:.5f}, "
                  f"random {rnd.predicted_top1:.5f}, front {rows[-1]['nsga2_front_top1']:.5f} ({n} evaluations)")
    result = {"device": args.device, "min_latency_ms": lo, "largest_latency_ms": hi, "ea": size, "aging": AGING,
              "predictor_rmse": predictor.report.get("rmse"), "loadavg_1m": os.getloadavg()[0],
              "mean_ea_seconds": float(np.mean([r["ea_seconds"] for r in rows])), "runs": len(rows),
              "vs_random": summary(rows, "random"), "vs_aging": summary(rows, "aging"),
              "vs_nsga2_front": summary(rows, "nsga2_front"), "rows": rows}
    out = Path(__file__).parent / "results" / f"search_vs_random_{args.device}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for other in ("random", "aging", "nsga2_front"):
        s = result[f"vs_{other}"]
        print(f"EA vs {other}: wins {s['ea_wins']}, ties {s['ties']}, losses {s['losses']} of {len(rows)}; mean gain "
              f"{100 * s['mean_gain_predicted_top1']:+.3f} points of predicted top-1")
    print(f"EA {result['mean_ea_seconds']:.2f} s/search -> {out}")


if __name__ == "__main__":
    main()
