"""Accuracy predictors compared on the shipped supernet's measured subnets (arch, validation top-1 on
5000 images), all on one held-out split: the shipped predictor's (evolve._heldout.heldout_split with seed 0: a
fifth of all samples, 200 of the shipped 1000). Nothing below looks at them until the final held-out figures.

- feature sets: `onehot` (the MLP's), `slots` (k and e per block slot as numbers, depth per stage,
  resolution), `costs` (resolution; per stage depth, mean k, mean e, MACs, parameters; total MACs and
  parameters, counted on the blocks the network builds), and unions;
- models: the MLP (evolve.fit), ridge, gradient-boosted trees (scikit-learn, `hwofa predictor
  --model trees`' settings), random forest, a Gaussian process (Matern 5/2 + white noise), GBT + GP averaged, and a GP
  with one length scale per feature (ARD; on the slots only, ~12 min of CV on one core, run by --quick too);
- held-out figures against the test images as well, when benchmarks/results/predictor_labels.json holds
  the same held-out subnets' test top-1 (they only score what CV chose, never choose): Kendall tau
  against test top-1 and against top-1 over all 15 000 images;
- model selection by 5-fold cross-validation on the training part; a GBT hyper-parameter grid (trees,
  learning rate, depth, subsample, min_samples_leaf, max_features, an average of 5 seeds) from which
  evolve.tree_predictor.HYPER is chosen, by CV alone;
- learning curve: held-out figures at 100..N training subnets (5 random subsets each), to tell whether
  more measured subnets would help;
- measurement noise: `--noise-floor N` held-out subnets measured again per validation image, each half
  of the 5000 images scored apart (20 random halvings). sd(half A - half B) / 2 across subnets is how
  much a 5000-image top-1 moves with the images drawn (the offset common to all subnets removed); the
  predictors are scored against such figures. With that noise sd and the held-out top-1's spread, a
  predictor that knew each subnet's noise-free top-1 would reach about tau = (2 / pi) asin(rho),
  rho = sqrt(1 - noise^2 / var) (Gaussian approximation): a rough ceiling. Not a strict one: subnets
  share weights, so similar ones partly share that noise. The two halves' Kendall tau says how well
  the measurement itself ranks subnets.

    python benchmarks/predictor_compare.py [--samples predictor_samples.json] [--quick] [--noise-floor 40]
writes benchmarks/results/predictor_compare.json (figures in points of top-1: RMSE, MAE, bias)
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from evolve import features, fit
from evolve._heldout import error_report, gaussian_tau, heldout_split, out_of_fold, split_half_noise
from evolve.gp_predictor import regressor as gp_regressor
from evolve.measure import measure_archs
from evolve.tree_predictor import HYPER
from evolve.zero_cost import size
from hwofa.common import SHIPPED_RUN, read_json
from supernet import ArchSpec, SearchSpace, block_for

FOLDS = 5
# the shipped predictor (accuracy_predictor.json "model") -> its row here (on the slots)
SHIPPED_ROW = {"gaussian-process-ard": "gp-ard", "gradient-boosted-trees": "gbt"}


class MLP:
    """evolve.fit's one-hot MLP behind the fit/predict interface the scikit-learn models have."""

    def __init__(self, space: SearchSpace, archs: list[ArchSpec]) -> None:
        self.space, self.archs, self.index = space, archs, {a.key(): i for i, a in enumerate(archs)}

    def fit(self, rows: np.ndarray, y: np.ndarray) -> MLP:
        idx = rows[:, 0].astype(int)  # the MLP gets row indices and builds its own features
        split = (np.arange(len(idx)), np.arange(min(2, len(idx))))
        self.model = fit(self.space, [self.archs[i] for i in idx], y, torch.Generator().manual_seed(0), split=split)
        return self

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self.model.predict([self.archs[i] for i in rows[:, 0].astype(int)])


class Average:
    def __init__(self, *models: Any) -> None:
        self.models = models

    def fit(self, x: np.ndarray, y: np.ndarray) -> Average:
        for m in self.models:
            m.fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.mean([m.predict(x) for m in self.models], axis=0)


def gp() -> Any:
    kernel = ConstantKernel() * Matern(length_scale=5.0, nu=2.5) + WhiteKernel(0.1)
    return make_pipeline(StandardScaler(), GaussianProcessRegressor(kernel, normalize_y=True, random_state=0))


MODELS = {
    "ridge": lambda: make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))),
    "gbt": lambda: GradientBoostingRegressor(**HYPER, random_state=0),
    "random_forest": lambda: RandomForestRegressor(300, min_samples_leaf=2, random_state=0, n_jobs=1),
    "gp": gp,
    "gbt+gp": lambda: Average(GradientBoostingRegressor(**HYPER, random_state=0), gp()),
    "gp-ard": None,  # evolve.gp_predictor.regressor, built per feature set (a length scale each); slots only
}


@cache
def _block(space: SearchSpace, stage: int, first: bool, k: int, e: int, r: int) -> tuple[int, int]:
    g = space.block_geometry(stage, first, r)
    return size(block_for(space, stage, first, k, e), (1, g.in_ch, g.in_hw, g.in_hw))


def cost_features(space: SearchSpace, archs: list[ArchSpec]) -> np.ndarray:
    """Resolution; per stage depth, mean k, mean e, MACs (millions), parameters (thousands); totals."""
    rows = []
    for a in archs:
        per = [[_block(space, s, b == 0, x.kernel_size, x.expand_ratio, a.resolution) for b, x in enumerate(st)]
               for s, st in enumerate(a.stages)]
        macs = [sum(m for _, m in c) / 1e6 for c in per]
        params = [sum(p for p, _ in c) / 1e3 for c in per]
        rows.append([a.resolution, *a.depths, *[np.mean([x.kernel_size for x in st]) for st in a.stages],
                     *[np.mean([x.expand_ratio for x in st]) for st in a.stages], *macs, *params, sum(macs),
                     sum(params)])
    return np.array(rows)


def feature_sets(space: SearchSpace, archs: list[ArchSpec]) -> dict[str, np.ndarray]:
    onehot, slots = features(space, archs, "onehot"), features(space, archs, "slots")
    costs = cost_features(space, archs)
    return {"onehot": onehot.astype(float), "slots": slots.astype(float), "costs": costs,
            "onehot+costs": np.hstack([onehot, costs]), "slots+costs": np.hstack([slots, costs])}


def scores(pred: np.ndarray, truth: np.ndarray, n_train: int) -> dict[str, float]:
    rep = error_report(pred, truth, n_train, np.arange(len(truth)))
    out = {k: rep[k] for k in ("kendall_tau", "spearman")}
    return {**out, **{k: 100 * rep[k] for k in ("rmse", "mae", "bias")}, "n_train": n_train}


def cross_validated(make: Any, x: np.ndarray, y: np.ndarray, assignments: int = 1) -> dict[str, float]:
    """5-fold CV scores; with several fold assignments (seeds 0, 1, ...), their mean."""
    n = len(y) - len(y) // FOLDS
    runs = [scores(out_of_fold(make, x, y, seed=s, folds=FOLDS), y, n) for s in range(assignments)]
    return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}


def test_labels(test: np.ndarray) -> dict[str, np.ndarray] | None:
    """The held-out subnets' top-1 on the 10 000 test images and over all 15 000 images, from
    predictor_labels' results (None if it has not run on these held-out subnets)."""
    path = Path(__file__).parent / "results" / "predictor_labels.json"
    if not path.is_file():
        return None
    rows = {r["index"]: r for r in read_json(path, "predictor_labels results")["rows"]}
    if not all(int(i) in rows for i in test):
        return None
    val = np.array([rows[int(i)]["validation_top1"] for i in test])
    tst = np.array([rows[int(i)]["test_top1"] for i in test])
    return {"test": tst, "all_15000": (5000 * val + 10000 * tst) / 15000}


def compare(xs: dict[str, np.ndarray], y: np.ndarray, train: np.ndarray, test: np.ndarray, mlp: Any,
            quick: bool) -> list[dict[str, Any]]:
    rows = []
    labels = test_labels(test)
    candidates = [("mlp", "onehot", mlp)] + [
        (m, f, make if m != "gp-ard" else (lambda d=xs[f].shape[1]: gp_regressor(0, d))) for f in xs
        for m, make in MODELS.items()
        if not (quick and m in ("gp", "gbt+gp", "random_forest")) and (m != "gp-ard" or f == "slots")]
    for model, fs, make in candidates:
        x = np.arange(len(y))[:, None] if model == "mlp" else xs[fs]
        t0 = time.time()
        cv = cross_validated(make, x[train], y[train])
        pred = make().fit(x[train], y[train]).predict(x[test])
        held = scores(pred, y[test], len(train))
        row = {"model": model, "features": fs, "cv": cv, "heldout": held, "seconds": round(time.time() - t0, 1)}
        if labels is not None:
            row["heldout_tau_against"] = {k: float(kendalltau(pred, v).statistic) for k, v in labels.items()}
        rows.append(row)
        print(f"{model:>13} on {fs:<13} cv tau {cv['kendall_tau']:.3f} rmse {cv['rmse']:.3f} | held-out tau "
              f"{held['kendall_tau']:.3f} rmse {held['rmse']:.3f} mae {held['mae']:.3f}"
              + ("".join(f" | tau vs {k} {v:.3f}" for k, v in row.get("heldout_tau_against", {}).items())),
              flush=True)
    return rows


# (trees, learning rate, depth, subsample, min_samples_leaf, max_features); the first is the predictor shipped
# on 500 subnets
GRID = [(200, 0.05, 3, 0.8, 1, None), (100, 0.1, 3, 0.8, 1, None), (400, 0.025, 3, 0.8, 1, None),
        (800, 0.0125, 3, 0.8, 1, None), (1000, 0.02, 3, 0.8, 1, None), (400, 0.05, 3, 0.8, 1, None),
        (400, 0.05, 2, 0.8, 1, None), (800, 0.05, 2, 0.8, 1, None), (300, 0.05, 4, 0.8, 1, None),
        (600, 0.025, 4, 0.8, 1, None), (400, 0.05, 3, 0.5, 1, None), (400, 0.05, 3, 0.8, 1, 0.5),
        (400, 0.05, 3, 0.8, 5, None), (400, 0.05, 3, 0.8, 10, None), (400, 0.05, 3, 0.8, 15, None),
        (400, 0.05, 3, 0.8, 20, None), (600, 0.05, 3, 0.8, 10, None), (800, 0.025, 3, 0.8, 5, 0.5),
        (300, 0.05, 4, 0.8, 10, 0.5)]
SEEDS = 5  # the CV-best setting again as an average of this many seeds
ASSIGNMENTS = 2  # grid CV figures: the mean over this many fold assignments (one moves tau by ~0.003)


def gbt_grid(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """5-fold CV (mean over ASSIGNMENTS fold assignments) of each GRID setting, and of the best one averaged
    over SEEDS seeds, on the training part; the best: highest tau to 3 decimals, then lowest RMSE."""
    rows = []
    for n, lr, depth, sub, leaf, feat in GRID:
        hyper = {"n_estimators": n, "learning_rate": lr, "max_depth": depth, "subsample": sub,
                 **({"min_samples_leaf": leaf} if leaf > 1 else {}), **({"max_features": feat} if feat else {})}
        cv = cross_validated(lambda h=hyper: GradientBoostingRegressor(**h, random_state=0), x, y, ASSIGNMENTS)
        rows.append({"hyper": hyper, "cv": cv})
        print(f"gbt {hyper}: cv tau {cv['kendall_tau']:.3f} rmse {cv['rmse']:.3f}", flush=True)
    best = max(rows, key=lambda r: (round(r["cv"]["kendall_tau"], 3), -r["cv"]["rmse"]))["hyper"]
    avg = cross_validated(lambda: Average(*(GradientBoostingRegressor(**best, random_state=s) for s in range(SEEDS))),
                          x, y, ASSIGNMENTS)
    print(f"gbt {best} averaged over {SEEDS} seeds: cv tau {avg['kendall_tau']:.3f} rmse {avg['rmse']:.3f}", flush=True)
    return {"fold_assignments": ASSIGNMENTS, "rows": rows, "best_by_cv": best, "trees_default": HYPER,
            "trees_default_is_best": best == HYPER, f"best_averaged_over_{SEEDS}_seeds": avg}


def learning_curve(xs: dict[str, np.ndarray], y: np.ndarray, train: np.ndarray, test: np.ndarray, mlp: Any,
                   repeats: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    sizes = [n for n in (100, 200, 300, 400, 600, 800) if n < len(train)] + [len(train)]
    out = []
    for n in sizes:
        for name, make, x in [("gbt", MODELS["gbt"], xs["slots"]), ("mlp", mlp, np.arange(len(y))[:, None])]:
            runs = [scores(make().fit(x[sub], y[sub]).predict(x[test]), y[test], n)
                    for sub in ([train] if n == len(train) else [rng.choice(train, n, replace=False)
                                                                 for _ in range(repeats)])]
            row = {"model": name, "n_train": n, "runs": len(runs),
                   **{k: float(np.mean([r[k] for r in runs])) for k in ("kendall_tau", "rmse", "mae")},
                   "kendall_tau_sd": float(np.std([r["kendall_tau"] for r in runs]))}
            out.append(row)
            print(f"learning curve {name} n={n}: tau {row['kendall_tau']:.3f} rmse {row['rmse']:.3f}", flush=True)
    return out


def noise_floor(archs: list[ArchSpec], y: np.ndarray, n: int) -> dict[str, Any]:
    correct = np.array(measure_archs(SHIPPED_RUN, archs[:n], per_image=True))  # (subnets, images)
    # BN recalibration sums in an order that depends on the thread count, which can flip a borderline
    # image: a few images of drift is reported, more means the samples belong to something else
    drift = np.abs(correct.mean(1) - y[:n]) * correct.shape[1]
    if drift.max() > 5:
        raise SystemExit(f"per-image measurement disagrees with the stored top-1 by up to {drift.max():.0f} images")

    halvings = 20
    diff_sd, split_tau = split_half_noise(correct, halvings, np.random.default_rng(0))
    sd = diff_sd / 2  # halves of 2 500 images: a 5 000-image top-1 has half the sd of their difference
    spread = float(100 * np.std(y, ddof=1))
    return {"subnets": n, "halvings": halvings, "noise_sd_points": sd, "heldout_sd_points": spread,
            "remeasured_vs_stored_images": {"max": int(round(drift.max())),
                                            "subnets_differing": int((drift > 0.5).sum())},
            "tau_ceiling_gaussian": gaussian_tau(np.sqrt(1 - sd ** 2 / spread ** 2)),
            "split_half_kendall_tau": split_tau,
            "note": "sd over subnets of (top-1 on half A - on half B) / 2: how much a 5000-image top-1 moves with the "
                    "images drawn; tau_ceiling_gaussian: Kendall tau of noise-free top-1 against measured, if both "
                    "were Gaussian (heldout_sd_points: the measured spread of all held-out subnets); "
                    "split_half_kendall_tau: the two 2500-image halves ranking the same subnets"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", default=str(SHIPPED_RUN / "predictor_samples.json"),
                    help="measured subnets (evolve.measure_subnets' file)")
    ap.add_argument("--quick", action="store_true", help="no isotropic GP / forest, 2 learning-curve repeats")
    ap.add_argument("--noise-floor", type=int, default=40, metavar="N", help="held-out subnets measured per image "
                    "for the noise floor (0: skip)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    t0 = time.time()
    space = SearchSpace.from_dict(read_json(SHIPPED_RUN / "supernet.json", "supernet")["space"])
    samples = read_json(Path(args.samples), "predictor samples")["samples"]
    archs = [ArchSpec.from_dict(s["arch"]) for s in samples]
    y = np.array([s["val_top1"] for s in samples])
    train, test = heldout_split(len(y), torch.Generator().manual_seed(0))  # the shipped predictor's split (seed 0)
    xs = feature_sets(space, archs)
    mlp = lambda: MLP(space, archs)  # noqa: E731
    rows = compare(xs, y, train, test, mlp, args.quick)
    best = max(rows, key=lambda r: (round(r["cv"]["kendall_tau"], 3), -r["cv"]["rmse"]))
    shipped_row = SHIPPED_ROW[read_json(SHIPPED_RUN / "accuracy_predictor.json", "accuracy predictor")["model"]]
    result = {"samples": len(y), "n_train": len(train), "n_heldout": len(test),
              "heldout": "the shipped predictor's held-out part (the seed-0 heldout_split of all samples)",
              "heldout_indices": test.tolist(), "figures": "RMSE, MAE, bias in points of validation top-1",
              "chosen_by_cv": {"model": best["model"], "features": best["features"], "heldout": best["heldout"],
                               **{k: best[k] for k in ("heldout_tau_against",) if k in best}},
              "shipped": next({k: r[k] for k in ("model", "features", "cv", "heldout", "heldout_tau_against") if k in r}
                              for r in rows if r["model"] == shipped_row and r["features"] == "slots"),
              "mlp_onehot": next(r for r in rows if r["model"] == "mlp")["heldout"], "rows": rows,
              "gbt_grid": gbt_grid(xs["slots"][train], y[train]),
              "learning_curve": learning_curve(xs, y, train, test, mlp, 2 if args.quick else 5),
              "noise_floor": noise_floor([archs[i] for i in test], y[test], args.noise_floor) if args.noise_floor
              else None, "loadavg_1m": os.getloadavg()[0], "seconds": round(time.time() - t0)}
    out = Path(__file__).parent / "results" / "predictor_compare.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    b, m = result["chosen_by_cv"], result["mlp_onehot"]
    print(f"chosen by CV: {b['model']} on {b['features']}: held-out tau {b['heldout']['kendall_tau']:.3f}, RMSE "
          f"{b['heldout']['rmse']:.3f} points (MLP: tau {m['kendall_tau']:.3f}, RMSE {m['rmse']:.3f}) -> {out}")


if __name__ == "__main__":
    main()
