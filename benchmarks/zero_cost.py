"""Zero-cost proxies (evolve/zero_cost.py: NASWOT, synflow) against the measured validation top-1 of the
first 500 of the shipped predictor's measured subnets, beside the trivial baselines (parameters, MACs)
and the shipped accuracy predictor, scored on the same subnets: `heldout`, the ones among the 500 that
the predictor held out (it never fitted them; about a fifth). `with_macs`: each score's rank
correlation with MACs (how much of a proxy is size).

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

from evolve import load_predictor
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
    pmeta = read_json(SHIPPED_RUN / "accuracy_predictor.json", "accuracy predictor")
    test = np.array(sorted(i for i in pmeta["heldout_indices"] if i < len(y)), dtype=int)
    scores["predictor"] = np.asarray(load_predictor(SHIPPED_RUN, net.space, meta.weights_sha256).predict(archs))
    seeds = {}
    for s in (1, 2):
        again = [proxies(net, meta, a, images, s, False) for a in tqdm(archs[:50], desc=f"init seed {s}")]
        seeds[f"seed_{s}"] = {k: float(spearmanr([r[k] for r in again], scores[k][:50]).statistic)
                              for k in again[0]}
    result = {"subnets": len(y), "batch": args.batch, "seed": args.seed,
              "naswot_units": "inputs of every nn.ReLU and nn.Hardswish; code = pre-activation > 0; BN batch stats",
              "synflow": "BN removed, |parameters|, float64, all-ones input; log of the sum over conv/linear weights",
              "predictor": f"{pmeta['model']}, held-out tau {pmeta['kendall_tau']:.3f} on its "
                           f"{len(pmeta['heldout_indices'])} held-out subnets; "
                           "'all' includes the subnets it was fitted on, 'heldout' only the ones it was not",
              "all": ranks(scores, y), "heldout": ranks({k: v[test] for k, v in scores.items()}, y[test]),
              "heldout_subnets": len(test), "with_macs": ranks(scores, scores["macs"]),
              "init_seed_spearman_first_50": seeds,
              "loadavg_1m": os.getloadavg()[0], "seconds": round(time.time() - t0),
              "rows": [{"arch": s["arch"], "val_top1": s["val_top1"], **r, "predictor": float(p)}
                       for s, r, p in zip(samples, rows, scores["predictor"], strict=True)]}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "zero_cost.json"
    out.write_text(json.dumps(result, indent=2))
    for k, v in result["all"].items():
        print(f"{k:>16}: Kendall tau {v['kendall_tau']:+.3f}, Spearman {v['spearman']:+.3f} "
              f"(held-out {len(test)}: tau {result['heldout'][k]['kendall_tau']:+.3f})")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
