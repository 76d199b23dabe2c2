"""The seed literature's search strategies on hwofa's objective, at the same evaluation budget.

Over the shipped supernet's space, with its predictor and a device's cached LUT, the same bounded
repair into the latency budget, and the same number of evaluations (distinct archs given to the
predictor): the number hwofa's single-budget DEAP search (`search`, population 100 x `--generations`)
used at that budget and seed, in two tiers: population 100 x `--generations` (default 20, about 2000
evaluations; every strategy) and x `--long-generations` (default 500, hwofa's default search, about
40000; without TPE, whose cost grows with the square of the trials). Strategies:
- ea: hwofa's `search` ((mu + lambda) GA with repair);
- nsga2_front: hwofa's NSGA-II front (`search_front`, same size; no budget while searching, so its
  own evaluation count) read at the budget;
- aging: aging evolution (Real et al. 2019), population 100, sample 25;
- reinforce: a REINFORCE controller after Zoph & Le 2017 (independent logits per gene, moving-average
  baseline, entropy bonus; evolve/strategies.py);
- tpe: optuna's TPESampler (multivariate, one categorical per gene);
- random: random search.
Each pick's validation top-1 is then measured the way the predictor's training set was
(evolve/measure.py: BN recalibrated, ONNX on the reference runtime, the validation split), once per
distinct arch; a rerun on the same supernet reuses the measurements of the previous results file.

    nice -n 15 python benchmarks/search_strategies.py --device cpu-onnxruntime [--seeds 3] [--generations 20]
        [--long-generations 500]
writes benchmarks/results/search_strategies_<device>.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from evolve import aging_evolution, load_predictor, random_search, reinforce, search, search_front, tpe
from evolve.measure import measure_archs
from hwofa import pipeline
from supernet import ArchSpec, load_supernet

STRATEGIES = ("ea", "nsga2_front", "aging", "reinforce", "tpe", "random")
EVOLUTION = ("ea", "aging")
FRACTIONS = (0.1, 0.3, 0.6)


def _row(arch: ArchSpec, top1: float, latency_ms: float, evaluations: int, seconds: float) -> dict[str, Any]:
    return {"arch_key": arch.key(), "arch": arch.to_dict(), "predicted_top1": top1, "latency_ms": latency_ms,
            "evaluations": evaluations, "seconds": seconds}


def run_budget(space: Any, predictor: Any, table: Any, budget: float, seed: int, generations: int,
               front: Any, with_tpe: bool) -> dict[str, dict[str, Any]]:
    """Every strategy at one budget and seed; the evaluation count is the one `search` used."""
    ea = search(space, predictor, table, budget, random.Random(seed), population=100, generations=generations,
                offspring=100)
    n = ea.evaluations
    runs = {"ea": ea,
            "aging": aging_evolution(space, predictor, table, budget, random.Random(seed), evaluations=n,
                                     population=100, sample=25),
            "reinforce": reinforce(space, predictor, table, budget, random.Random(seed), evaluations=n),
            "random": random_search(space, predictor, table, budget, random.Random(seed), samples=n)}
    if with_tpe:
        runs["tpe"] = tpe(space, predictor, table, budget, random.Random(seed), evaluations=n)
    out = {k: _row(r.arch, r.predicted_top1, r.predicted_latency_ms, r.evaluations, r.seconds)
           for k, r in runs.items()}
    point = front.best_under(budget)
    out["nsga2_front"] = _row(point.arch, point.predicted_top1, point.predicted_latency_ms, front.evaluations,
                              front.seconds)
    return out


def measure(archs: dict[str, ArchSpec], run: Path, known: dict[str, float]) -> dict[str, float]:
    """Validation top-1 of each arch, as evolve/measure.py measures the predictor's training set;
    `known` (key -> top-1, same supernet) is reused."""
    todo = sorted(k for k in archs if k not in known)
    got = measure_archs(run, [archs[k] for k in todo]) if todo else []
    return {**{k: known[k] for k in archs if k in known}, **dict(zip(todo, got, strict=True))}


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per budget and strategy: predicted and measured top-1 (mean and std over seeds), evaluations, seconds."""
    out = []
    for frac in FRACTIONS:
        at = [r for r in rows if r["fraction"] == frac]
        for k in (k for k in STRATEGIES if k in at[0]["strategies"]):
            runs = [r["strategies"][k] for r in at]
            out.append({"fraction": frac, "budget_ms": at[0]["budget_ms"], "strategy": k,
                        **{f: _stats([x[f] for x in runs])
                           for f in ("predicted_top1", "measured_top1", "evaluations", "seconds")}})
    return out


def compare(rows: list[dict[str, Any]], a: str, b: str, field: str, strict: bool) -> dict[str, Any]:
    """How often `a` beats (strict) or matches `b` over the (budget, seed) runs, and the gap's mean and std."""
    gap = np.array([r["strategies"][a][field] - r["strategies"][b][field] for r in rows])
    wins = int((gap > 0).sum()) if strict else int((gap >= 0).sum())
    return {"a": a, "b": b, "relation": ">" if strict else ">=", "field": field, "holds_in": wins, "of": len(gap),
            "mean_gap_points": float(100 * gap.mean()), "std_gap_points": float(100 * gap.std(ddof=1))}


def claim(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The seed lectures' 'evolution >= RL > random at equal cost', checked run by run."""
    checks = [compare(rows, evo, "reinforce", f, strict=False) for evo in EVOLUTION
              for f in ("predicted_top1", "measured_top1")]
    checks += [compare(rows, "reinforce", "random", f, strict=True) for f in ("predicted_top1", "measured_top1")]
    lines = [f"{c['a']} {c['relation']} {c['b']} on {c['field']}: {c['holds_in']}/{c['of']} runs, gap "
             f"{c['mean_gap_points']:+.2f} ± {c['std_gap_points']:.2f} points" for c in checks]
    return {"checks": checks, "lines": lines}


def run_tier(net: Any, predictor: Any, table: Any, seeds: int, generations: int, with_tpe: bool) -> list[dict]:
    """All budgets and seeds at the evaluation count of `search` with population 100 x `generations`."""
    lo, hi = table.min_latency()[0], table.predict(net.space.largest())
    fronts = {s: search_front(net.space, predictor, table, random.Random(s), population=100,
                              generations=generations) for s in range(seeds)}
    rows = []
    for frac in FRACTIONS:
        budget = lo + frac * (hi - lo)
        for seed in range(seeds):
            got = run_budget(net.space, predictor, table, budget, seed, generations, fronts[seed], with_tpe)
            rows.append({"generations": generations, "fraction": frac, "budget_ms": budget, "seed": seed,
                         "strategies": got})
            print(f"{generations} generations, budget {budget:.4f} ms, seed {seed}: " + ", ".join(
                f"{k} {v['predicted_top1']:.4f} ({v['evaluations']}, {v['seconds']:.1f} s)" for k, v in got.items()),
                flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu-onnxruntime")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--generations", type=int, default=20, help="of hwofa's search at population 100: its "
                    "evaluation count is every strategy's budget (TPE's cost grows with its square)")
    ap.add_argument("--long-generations", type=int, default=500, help="a second, longer tier at hwofa's default "
                    "search size, without TPE; 0: none")
    args = ap.parse_args()
    run = pipeline.supernet_dir(None)
    net, meta = load_supernet(run)
    predictor = load_predictor(run, net.space, meta.weights_sha256)
    pmeta = json.loads((run / "accuracy_predictor.json").read_text())
    table, _, _ = pipeline.profile(args.device, progress=False)
    tiers = [(args.generations, True)] + ([(args.long_generations, False)] if args.long_generations else [])
    rows = [r for g, with_tpe in tiers for r in run_tier(net, predictor, table, args.seeds, g, with_tpe)]
    out = Path(__file__).parent / "results" / f"search_strategies_{args.device}.json"
    old = json.loads(out.read_text()) if out.is_file() else {}
    known = old.get("measured_top1", {}) if old.get("supernet_sha256") == meta.weights_sha256 else {}
    picks = {r["arch_key"]: ArchSpec.from_dict(r["arch"]) for row in rows for r in row["strategies"].values()}
    measured = measure(picks, run, known)
    for r in (r for row in rows for r in row["strategies"].values()):
        r["measured_top1"] = measured[r["arch_key"]]
    result = {"device": args.device, "min_latency_ms": table.min_latency()[0], "seeds": args.seeds,
              "largest_latency_ms": table.predict(net.space.largest()), "supernet_sha256": meta.weights_sha256,
              "predictor": {k: pmeta.get(k) for k in ("format", "weights_sha256", "rmse", "kendall_tau", "n_train")},
              "validation_images": meta.dataset.val_size, "loadavg_1m": os.getloadavg()[0],
              "tiers": [{"generations": g, "tpe": with_tpe, "table": table_rows(at), "claim": claim(at)}
                        for g, with_tpe in tiers for at in [[r for r in rows if r["generations"] == g]]],
              "measured_top1": measured, "rows": rows}
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for tier in result["tiers"]:
        print(f"-- population 100 x {tier['generations']} generations' evaluations")
        for t in tier["table"]:
            print(f"{t['fraction']:.0%} {t['budget_ms']:.3f} ms {t['strategy']:>12}: predicted "
                  f"{100 * t['predicted_top1']['mean']:.2f} ± {100 * t['predicted_top1']['std']:.2f}, measured "
                  f"{100 * t['measured_top1']['mean']:.2f} ± {100 * t['measured_top1']['std']:.2f}, "
                  f"{t['evaluations']['mean']:.0f} evaluations, {t['seconds']['mean']:.1f} s")
        print("\n".join(tier["claim"]["lines"]))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
