"""Do different devices pick different subnets? For each device, budgets at the same relative
places of its own latency range (its fastest subnet .. the largest subnet, from its LUT), one
search each on the shipped supernet's predictor; then the matrix of every chosen subnet's
predicted latency on every device (over its budget = the choice would not fit there).

    python benchmarks/specialisation.py --device cpu-onnxruntime --device fpga-dpu-b4096 --device fpga-dpu-b1152
writes benchmarks/results/specialisation.json (LUTs are built first when not cached).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from evolve import load_predictor, search
from hwofa import pipeline
from profiler import load_profile
from supernet import ArchSpec, load_supernet

PLACES = (0.25, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", action="append", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    run = pipeline.supernet_dir(None)
    net, _ = load_supernet(run)
    predictor = load_predictor(run, net.space)
    tables = {d: pipeline.profile(d, progress=True)[0] for d in args.device}
    rows = []
    for place in PLACES:
        picks = {}
        for d, table in tables.items():
            lo, hi = table.min_latency()[0], table.predict(net.space.largest())
            budget = lo + place * (hi - lo)
            res = search(net.space, predictor, table, budget, random.Random(args.seed))
            picks[d] = {"budget_ms": budget, "range_ms": [lo, hi], "arch_key": res.arch.key(),
                        "arch": res.arch.to_dict(), "predicted_top1": res.predicted_top1,
                        "predicted_latency_ms": res.predicted_latency_ms,
                        "source": table.header.get("source", "measured")}
        matrix = {d: {e: {"latency_ms": tables[e].predict(_arch(p)),
                          "share_of_budget": tables[e].predict(_arch(p)) / picks[e]["budget_ms"]}
                      for e in tables} for d, p in picks.items()}
        distinct = len({p["arch_key"] for p in picks.values()})
        rows.append({"place": place, "picks": picks, "matrix": matrix, "distinct_subnets": distinct})
        print(f"budget at {place:.0%} of each range: {distinct} distinct subnets for {len(picks)} devices")
        for d, p in picks.items():
            fits = [e for e in tables if matrix[d][e]["share_of_budget"] <= 1]
            print(f"  {d:<18} {p['budget_ms']:.4f} ms ({p['source']}): top-1 {p['predicted_top1']:.4f}, "
                  f"fits the budget of {', '.join(fits)}")
    result = {"devices": {d: {"profile": load_profile(d).to_dict(), "lut_created": t.header.get("created")}
                          for d, t in tables.items()}, "seed": args.seed, "rows": rows}
    out = Path(__file__).parent / "results" / "specialisation.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"-> {out}")


def _arch(pick: dict) -> ArchSpec:
    return ArchSpec.from_dict(pick["arch"])


if __name__ == "__main__":
    main()
