"""Zero-cost proxies (evolve/zero_cost.py: NASWOT, synflow) against the measured validation top-1 of the
shipped predictor's 500 subnets, beside the trivial baselines (parameters, MACs) and the accuracy
predictor (held-out tau on the same 100 subnets, from results/predictor_compare.json when present).
`with_macs`: each score's rank correlation with MACs (how much of a proxy is size).

Each proxy is computed on freshly initialised subnets (the zero-cost literature's setting; seed 0) and
on the subnets extracted from the trained supernet. NASWOT reads one minibatch of training images
(BN on its batch statistics); synflow an all-ones input. Init-seed sensitivity: the fresh proxies on
the first 50 subnets at seeds 1 and 2, rank-correlated with seed 0.

    python benchmarks/zero_cost.py [--batch 64] [--limit N]
writes benchmarks/results/zero_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr
from tqdm import tqdm

from evolve._heldout import heldout_split
from evolve.zero_cost import fresh_subnet, naswot, size, synflow
from hwofa.common import SHIPPED_RUN, read_json
from supernet import ArchSpec, load_dataset, load_supernet, preprocess, train_val_split

RESULTS = Path(__file__).parent / "results"


def minibatch(meta: Any, n: int, seed: int) -> torch.Tensor:
    """n training-split images (uint8), drawn with `seed`."""
    ds = meta.dataset
    data = load_dataset(ds.name, None)
    train_idx, _ = train_val_split(len(data.train_y), ds.val_size, ds.split_seed)
    pick = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(seed))[:n]
    return data.train_x[train_idx[pick]]


def proxies(net: Any, meta: Any, arch: ArchSpec, images: torch.Tensor, seed: int, trained: bool) -> dict[str, float]:
    ds, r = meta.dataset, arch.resolution
    x = preprocess(images, r, list(ds.mean), list(ds.std))
    shape = (1, images.shape[1], r, r)
    fresh = fresh_subnet(net.space, arch, seed)
    out = {"naswot_init": naswot(fresh, x), "synflow_init": synflow(fresh, shape)}
    if trained:
        params, macs = size(fresh, shape)
        sub = net.extract(arch)
        out.update({"naswot_trained": naswot(sub, x), "synflow_trained": synflow(sub, shape), "params": params,
                    "macs": macs})
    return out


def ranks(scores: dict[str, np.ndarray], y: np.ndarray) -> dict[str, dict[str, float]]:
    return {k: {"kendall_tau": float(kendalltau(v, y).statistic), "spearman": float(spearmanr(v, y).statistic)}
            for k, v in scores.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64, help="NASWOT minibatch size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="only the first N subnets (a quick look)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    net, meta = load_supernet(SHIPPED_RUN)
    samples = read_json(SHIPPED_RUN / "predictor_samples.json", "predictor samples")["samples"][:500][:args.limit]
    archs = [ArchSpec.from_dict(s["arch"]) for s in samples]
    y = np.array([s["val_top1"] for s in samples])
    images = minibatch(meta, args.batch, args.seed)
    rows = [proxies(net, meta, a, images, args.seed, True) for a in tqdm(archs, desc="proxies", unit="subnet")]
    scores = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    _, test = heldout_split(500, torch.Generator().manual_seed(0))
    test = test[test < len(y)]
    seeds = {}
    for s in (1, 2):
        again = [proxies(net, meta, a, images, s, False) for a in tqdm(archs[:50], desc=f"init seed {s}")]
        seeds[f"seed_{s}"] = {k: float(spearmanr([r[k] for r in again], scores[k][:50]).statistic)
                              for k in again[0]}
    compare_file = RESULTS / "predictor_compare.json"
    predictor = None
    if compare_file.is_file():
        comp = json.loads(compare_file.read_text())
        predictor = {"chosen": comp["chosen_by_cv"], "mlp_onehot": comp["mlp_onehot"]}
    result = {"subnets": len(y), "batch": args.batch, "seed": args.seed,
              "naswot_units": "inputs of every nn.ReLU and nn.Hardswish; code = pre-activation > 0; BN batch stats",
              "synflow": "BN removed, |parameters|, float64, all-ones input; log of the sum over conv/linear weights",
              "all": ranks(scores, y), "heldout_100": ranks({k: v[test] for k, v in scores.items()}, y[test]),
              "with_macs": ranks(scores, scores["macs"]),
              "init_seed_spearman_first_50": seeds, "predictor_heldout_100": predictor,
              "loadavg_1m": os.getloadavg()[0], "seconds": round(time.time() - t0),
              "rows": [{"arch": s["arch"], "val_top1": s["val_top1"], **r} for s, r in zip(samples, rows, strict=True)]}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "zero_cost.json"
    out.write_text(json.dumps(result, indent=2))
    for k, v in result["all"].items():
        print(f"{k:>16}: Kendall tau {v['kendall_tau']:+.3f}, Spearman {v['spearman']:+.3f} "
              f"(held-out 100: tau {result['heldout_100'][k]['kendall_tau']:+.3f})")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
