"""Does progressive shrinking help? The PS recipe against no-PS and from-scratch training, with
equal total epochs and identical data (OFA paper, Fig. 5 and Table 2, on Fashion-MNIST).

Methods (every run: the same training images, the same validation split, batch 128, AdamW, cosine LR):
- ps: the progressive-shrinking recipe (supernet/recipes/fashion_mnist_ps.yaml, shipped until 2026-11-28):
  full network, then elastic kernel, depth and expand ratio, distilling from the full network; its phase
  lengths scaled to --epochs;
- nops: one phase with every dimension elastic from the first epoch, the same sandwich sampling
  (largest, smallest and one random subnet per step) and no teacher (there is no trained full
  network to distil from when everything starts at once);
- ps-short: the candidate fix when PS loses at this budget (OFA's phases assume a long full-network
  phase): the same four phases, but the full network gets a quarter of the epochs, the elastic
  phases' learning rate is 2e-3 and expand ratio gets the rest (full 2, kernel 1, depth 1, expand 4);
- ps-short-nokd: ps-short without distillation (is a teacher trained for 2 epochs a help or a drag?);
- nops-inplace: nops with in-place distillation (BigNAS): every step's largest subnet, trained on the
  labels, teaches the other two on the same images (its logits detached, kd_ratio 1);
- ps-inplace: ps with the elastic phases distilling in place instead of from the frozen full network;
- scratch-<subnet>: one subnet trained alone (the recipe restricts every dimension to one value, so
  no other subnet shares its weights), for the smallest, the middle and the largest subnet.
Each run is evaluated as the shipped supernet is: the subnet extracted, BN recalibrated on 2 000
training images, top-1 on the 10 000 test images.

Seeds change initialisation, augmentation and subnet sampling only (`split_seed` fixes the data).
Every run lives in its own folder under --work and resumes from its last finished epoch, so the
script can be killed and started again; the results file is rewritten after each finished run.

    nohup python benchmarks/ps_ablation.py > ps_ablation.log 2>&1 &
writes benchmarks/results/ps_ablation.json
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch

from hwofa.common.files import atomic_write_json, read_json
from supernet.data import load_dataset
from supernet.recipe import Recipe, load_recipe
from supernet.train import Trainer

RESULTS = Path(__file__).resolve().parent / "results" / "ps_ablation.json"
SUBNETS = ("smallest", "middle", "largest")
PS_RECIPE = "fashion_mnist_ps"  # every method is derived from it (same data, space, seed, lr)


def scaled_phases(ps: Recipe, epochs: int) -> list[dict[str, Any]]:
    """The PS recipe's phases with their epochs scaled to `epochs` in total (each phase at least one)."""
    total = sum(p.epochs for p in ps.phases)
    out = [{**p.__dict__, "epochs": max(1, round(p.epochs * epochs / total))} for p in ps.phases]
    out[0]["epochs"] += epochs - sum(p["epochs"] for p in out)  # rounding goes to the full-network phase
    return out


def short_epochs(epochs: int) -> list[int]:
    """ps-short's phase lengths: a quarter full network, one epoch each for kernel and depth, the rest expand."""
    full = max(1, epochs // 4)
    return [full, 1, 1, max(1, epochs - full - 2)]


def subnet_dims(recipe: Recipe, which: str) -> dict[str, list[int]]:
    sp = recipe.search_space()
    dims = {d: list(getattr(sp, d)) for d in ("kernel_sizes", "expand_ratios", "depths", "resolutions")}
    pick = {"smallest": lambda v: v[0], "middle": lambda v: v[len(v) // 2], "largest": lambda v: v[-1]}[which]
    return {d: [pick(sorted(v))] for d, v in dims.items()}


def method_recipe(ps: Recipe, method: str, seed: int, epochs: int, train_images: int) -> Recipe:
    base = {k: v for k, v in ps.to_dict().items() if k != "phases"}
    base.update(seed=seed, split_seed=ps.seed, train_limit=train_images)
    lr = ps.phases[0].lr
    if method == "ps":
        phases = scaled_phases(ps, epochs)
    elif method in ("ps-short", "ps-short-nokd"):
        kd = {"kd_ratio": 0.0} if method.endswith("nokd") else {}
        phases = [p.__dict__ | {"lr": p.lr if i == 0 else 2e-3} | (kd if i else {})
                  for i, p in enumerate(ps.phases)]
        for p, n in zip(phases, short_epochs(epochs), strict=True):
            p["epochs"] = n
    elif method == "ps-inplace":
        phases = [p | ({"kd_teacher": "inplace"} if p["kd_ratio"] > 0 else {}) for p in scaled_phases(ps, epochs)]
    elif method == "nops":
        phases = [{"name": "all", "epochs": epochs, "lr": lr, "subnets_per_step": 3}]
    elif method == "nops-inplace":
        phases = [{"name": "all", "epochs": epochs, "lr": lr, "subnets_per_step": 3, "kd_ratio": 1.0,
                   "kd_teacher": "inplace"}]
    elif method.startswith("scratch-"):
        phases = [{"name": method, "epochs": epochs, "lr": lr, **subnet_dims(ps, method[len("scratch-"):])}]
    else:
        raise ValueError(method)
    return Recipe.from_dict({**base, "phases": phases}, source=f"ablation '{method}'")


def plan(seeds: list[int]) -> list[tuple[str, int]]:
    """Cheap and decisive runs first: PS/no-PS/scratch on the smallest subnet for every seed, then the rest."""
    first = [(m, s) for s in seeds[:1] for m in ("ps", "nops", "scratch-smallest")]
    spread = [(m, s) for s in seeds[1:] for m in ("scratch-smallest", "ps", "nops")]
    return first + spread + [("scratch-middle", seeds[0]), ("scratch-largest", seeds[0])] + \
        [("ps-short", seeds[0]), ("ps-short-nokd", seeds[0]),  # candidate fixes: one seed each
         ("nops-inplace", seeds[0]), ("ps-inplace", seeds[0])]


def finished(work: Path, method: str, seed: int) -> bool:
    meta = work / f"{method}-s{seed}" / "supernet.json"
    return meta.is_file() and bool(read_json(meta, "run").get("metrics"))


def compute(recipe: Recipe, steps: int) -> dict[str, int]:
    """Subnet forward+backward passes over images, and teacher forwards, that the recipe asks for."""
    passes = sum(p.epochs * steps * recipe.batch_size * p.subnets_per_step for p in recipe.phases)
    teacher = sum(p.epochs * steps * recipe.batch_size for p in recipe.phases
                  if p.kd_ratio > 0 and p.kd_teacher == "frozen")  # in place: the largest subnet's own pass
    return {"subnet_image_passes": passes, "teacher_image_forwards": teacher}


def run_one(work: Path, data: Any, method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    recipe = method_recipe(load_recipe(PS_RECIPE), method, seed, args.epochs, args.train_images)
    folder = work / f"{method}-s{seed}"
    meta_path = folder / "supernet.json"
    meta = read_json(meta_path, "run") if meta_path.is_file() else None
    if not (meta and meta.get("metrics")):
        trainer = Trainer(recipe, data, folder)
        trainer.fit(resume=meta_path.is_file())
        meta = read_json(meta_path, "run")
    top1 = {k: v["test_top1"] for k, v in meta["metrics"]["test_top1"].items()}
    trained = [method[len("scratch-"):]] if method.startswith("scratch-") else list(SUBNETS)
    history = meta["history"]
    return {"method": method, "seed": seed, "test_top1": {k: top1[k] for k in trained},
            "archs": {k: meta["metrics"]["test_top1"][k]["arch"] for k in trained},
            "train_seconds": round(sum(h["seconds"] for h in history), 1), "epochs": len(history),
            **compute(recipe, args.train_images // recipe.batch_size),
            "phases": [{"name": p.name, "epochs": p.epochs, "lr": p.lr, "subnets_per_step": p.subnets_per_step,
                        "kd_ratio": p.kd_ratio, "kd_teacher": p.kd_teacher} for p in recipe.phases],
            "final_val_top1": {k: v for k, v in history[-1].items() if k.startswith("val_top1")}}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        name = "scratch" if r["method"].startswith("scratch-") else r["method"]
        for sub, acc in r["test_top1"].items():
            table.setdefault(name, {}).setdefault(sub, []).append(acc)
    out: dict[str, Any] = {"test_top1": {m: {s: {"mean": sum(v) / len(v), "runs": v} for s, v in subs.items()}
                                         for m, subs in table.items()}}
    small = {m: subs.get("smallest", []) for m, subs in table.items()}
    for ps in ("ps", "ps-short"):
        if len(small.get(ps, [])) > 1 and len(small.get("nops", [])) > 1:
            spread = max(max(v) - min(v) for v in (small[ps], small["nops"]))
            gain = sum(small[ps]) / len(small[ps]) - sum(small["nops"]) / len(small["nops"])
            out[f"smallest_{ps}_minus_nops"] = {"points": round(100 * gain, 2),
                                                "seed_spread_points": round(100 * spread, 2),
                                                "beyond_spread": abs(gain) > spread}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("HWOFA_HOME", Path.home() / ".cache/hwofa"))
                    / "ps_ablation", help="run folders (weights; not committed)")
    ap.add_argument("--epochs", type=int, default=8, help="total epochs of every method")
    ap.add_argument("--train-images", type=int, default=10240, help="training images (a fixed subset)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--methods", nargs="+", default=None,
                    help="train only these methods (another process may train the rest in the same --work); the "
                         "results file always lists every finished run")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    data = load_dataset("fashion-mnist", download=False)
    todo = [(m, s) for m, s in plan(args.seeds) if args.methods is None or m in args.methods]
    for job in [*todo, None]:  # None: write the results once more at the end (nothing left to train)
        if job is not None:
            logging.info("run %s seed %d", *job)
            run_one(args.work, data, *job, args)
        rows = [run_one(args.work, data, m, s, args) for m, s in plan(args.seeds) if finished(args.work, m, s)]
        atomic_write_json(args.results, {
            "config": {"dataset": data.name, "train_images": args.train_images, "epochs": args.epochs,
                       "batch_size": 128, "seeds": args.seeds, "torch_threads": torch.get_num_threads(),
                       "host": "2-core Intel Xeon CPU, shared with other jobs (seconds are wall time, loaded)",
                       "command": "python benchmarks/ps_ablation.py "
                                  f"--epochs {args.epochs} --train-images {args.train_images} "
                                  f"--seeds {' '.join(map(str, args.seeds))}"
                                  + (f" --threads {args.threads}" if args.threads else "")
                                  + " (candidates and the last runs in a second process with --methods)"},
            "runs": rows, "summary": summarise(rows), "complete": len(rows) == len(plan(args.seeds))})


if __name__ == "__main__":
    main()
