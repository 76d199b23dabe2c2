"""The single-budget DEAP search against baselines with the same number of predictor evaluations
(distinct archs), on the shipped supernet's predictor and a device's LUT, over several seeds and budgets:
- random search: sample, repair, keep the best;
- aging (regularized) evolution, Real et al. 2019: population 100, sample 25, one-gene mutation, repair;
- OFA's EvolutionFinder (Cai et al. 2020): population 100, parents 25 %, half mutation (p 0.1, resolution
  0.5), half crossover; "native": children over the budget redrawn (at most 1000 draws a child),
  "repair": repaired with hwofa's repair;
- NSGA-II without repair: hwofa's front search limited to the budget, infeasible children penalised.
Beside them, the NSGA-II front (no latency limit, so no repair; its own evaluation count, about the
same) read at each budget. Each comparison: wins/ties/losses of the EA over the runs, a Wilcoxon
signed-rank test on the paired differences (ties dropped) and a sign test.

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
from scipy import stats

from evolve import aging_evolution, load_predictor, random_search, search, search_front
from evolve.baselines import evolution_finder, nsga2_no_repair
from hwofa import pipeline
from supernet import load_supernet

AGING = {"population": 100, "sample": 25}
FRACTIONS = (0.1, 0.3, 0.6)  # budgets at these places of the device's range
BASELINES = {  # name -> search(space, predictor, table, budget, rng, evaluations)
    "random": lambda sp, p, t, b, rng, n: random_search(sp, p, t, b, rng, samples=n),
    "aging": lambda sp, p, t, b, rng, n: aging_evolution(sp, p, t, b, rng, evaluations=n, **AGING),
    "ofa_native": lambda sp, p, t, b, rng, n: evolution_finder(sp, p, t, b, rng, evaluations=n, constraint="native"),
    "ofa_repair": lambda sp, p, t, b, rng, n: evolution_finder(sp, p, t, b, rng, evaluations=n, constraint="repair"),
    "nsga2_norepair": lambda sp, p, t, b, rng, n: nsga2_no_repair(sp, p, t, b, rng, evaluations=n),
}
OTHERS = (*BASELINES, "nsga2_front")


def summary(rows: list[dict[str, Any]], other: str) -> dict[str, Any]:
    gain = np.array([r["ea_top1"] - r[f"{other}_top1"] for r in rows])
    wins, losses = int((gain > 0).sum()), int((gain < 0).sum())
    wilcoxon = float(stats.wilcoxon(gain, zero_method="wilcox").pvalue) if wins + losses else 1.0
    sign = float(stats.binomtest(wins, wins + losses).pvalue) if wins + losses else 1.0
    return {"mean_gain_predicted_top1": float(gain.mean()), "ea_wins": wins, "ties": int((gain == 0).sum()),
            "losses": losses, "wilcoxon_p": wilcoxon, "sign_test_p": sign,
            f"mean_{other}_seconds": float(np.mean([r[f"{other}_seconds"] for r in rows])),
            f"mean_{other}_evaluations": float(np.mean([r[f"{other}_evaluations"] for r in rows]))}


def by_budget(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean predicted top-1 of each method at each budget fraction."""
    return {str(f): {m: float(np.mean([r[f"{m}_top1"] for r in rows if r["budget_frac"] == f]))
                     for m in ("ea", *OTHERS)} for f in FRACTIONS}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu-onnxruntime")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--generations", type=int, default=500)
    args = ap.parse_args()
    run = pipeline.supernet_dir(None)
    net, _ = load_supernet(run)
    sp = net.space
    predictor = load_predictor(run, sp)
    predictor_sha = json.loads((Path(run) / "accuracy_predictor.json").read_text()).get("weights_sha256")
    table, _, _ = pipeline.profile(args.device, progress=False)
    lo, hi = table.min_latency()[0], table.predict(sp.largest())
    size = {"population": args.population, "generations": args.generations}
    fronts = {s: search_front(sp, predictor, table, random.Random(s), **size) for s in range(args.seeds)}
    rows = []
    for frac in FRACTIONS:
        budget = lo + frac * (hi - lo)
        for seed in range(args.seeds):
            ea = search(sp, predictor, table, budget, random.Random(seed), offspring=args.population, **size)
            n, front = ea.evaluations, fronts[seed]
            row = {"budget_ms": budget, "budget_frac": frac, "seed": seed, "evaluations": n,
                   "ea_top1": ea.predicted_top1, "ea_seconds": ea.seconds,
                   "nsga2_front_top1": front.best_under(budget).predicted_top1,
                   "nsga2_front_seconds": front.seconds, "nsga2_front_evaluations": front.evaluations}
            for name, run_baseline in BASELINES.items():
                res = run_baseline(sp, predictor, table, budget, random.Random(seed), n)
                row.update({f"{name}_top1": res.predicted_top1, f"{name}_seconds": res.seconds,
                            f"{name}_evaluations": res.evaluations})
                if name == "ofa_native":
                    row.update({f"{name}_{k}": res.settings[k] for k in ("draws", "rejected", "given_up")})
            rows.append(row)
            print(f"budget {budget:.4f} ms seed {seed} ({n} evaluations): EA {ea.predicted_top1:.5f}, "
                  + ", ".join(f"{m} {row[f'{m}_top1']:.5f}" for m in OTHERS), flush=True)
    result = {"device": args.device, "min_latency_ms": lo, "largest_latency_ms": hi, "ea": size, "aging": AGING,
              "predictor_rmse": predictor.report.get("rmse"),
              "predictor_weights_sha256": predictor_sha, "loadavg_1m": os.getloadavg()[0],
              "mean_ea_seconds": float(np.mean([r["ea_seconds"] for r in rows])), "runs": len(rows),
              **{f"vs_{m}": summary(rows, m) for m in OTHERS}, "mean_top1_by_budget": by_budget(rows), "rows": rows}
    out = Path(__file__).parent / "results" / f"search_vs_random_{args.device}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for other in OTHERS:
        s = result[f"vs_{other}"]
        print(f"EA vs {other}: wins {s['ea_wins']}, ties {s['ties']}, losses {s['losses']} of {len(rows)}; mean gain "
              f"{100 * s['mean_gain_predicted_top1']:+.3f} points of predicted top-1; "
              f"Wilcoxon p {s['wilcoxon_p']:.3g}, sign test p {s['sign_test_p']:.3g}; "
              f"{s[f'mean_{other}_seconds']:.2f} s/search")
    for frac, means in result["mean_top1_by_budget"].items():
        print(f"budget {frac}: " + ", ".join(f"{m} {100 * v:.3f}" for m, v in means.items()))
    print(f"EA {result['mean_ea_seconds']:.2f} s/search -> {out}")


if __name__ == "__main__":
    main()
