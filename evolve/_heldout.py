"""How an accuracy predictor's error is measured and reported: the held-out split, the error figures on
subnets it did not see, and an interval for a prediction from residuals it did not fit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from hwofa.common import UserError, require_fields

# the figures report_summary() passes on (search.json's top1_error, model.json's predicted_error)
SUMMARY_KEYS = ("model", "rmse", "kendall_tau", "spearman", "mae", "bias", "n_train", "n_heldout", "split", "interval",
                "at_picks")
COVERAGE = 0.9


def check_record(meta: dict[str, Any], field: str, feature_set: str, path: Any) -> None:
    """A saved predictor's JSON holds its model's `field` (a dict) and was fitted on `feature_set`."""
    require_fields(meta, {field: dict, "feature_set": str}, "accuracy predictor", path)
    if meta["feature_set"] != feature_set:
        raise UserError(f"'{path}': feature set '{meta['feature_set']}' is not '{feature_set}'; rebuild the predictor.")


def stored_report(meta: dict[str, Any], extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """A saved predictor's report from its JSON record: the summary figures (and `extra` keys); `at_picks`
    only if it was measured on this very predictor's picks (same weights), else it is not this one's error."""
    report = {k: meta[k] for k in (*SUMMARY_KEYS, *extra) if k in meta}
    at_picks = report.get("at_picks")
    if not isinstance(at_picks, dict) or at_picks.get("predictor_weights_sha256") != meta.get("weights_sha256"):
        report.pop("at_picks", None)
    return report


def heldout_split(n: int, gen: torch.Generator, heldout: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: a random `heldout` share (at least 2) is held out."""
    if n < 10:
        raise UserError(f"an accuracy predictor needs at least 10 measured subnets, got {n}.")
    perm = torch.randperm(n, generator=gen).numpy()
    n_test = max(2, int(round(heldout * n)))
    return perm[n_test:], perm[:n_test]


def out_of_fold(make: Callable[[], Any], x: np.ndarray, y: np.ndarray, seed: int, folds: int = 5) -> np.ndarray:
    """Each row's prediction by a model (`make()`, with fit/predict) fitted on the other folds."""
    order = np.random.default_rng(seed).permutation(len(y))
    pred = np.zeros(len(y))
    for part in np.array_split(order, min(folds, len(y))):
        rest = np.setdiff1d(order, part)
        pred[part] = make().fit(x[rest], y[rest]).predict(x[part])
    return pred


def error_report(pred: np.ndarray, truth: np.ndarray, n_train: int, heldout: np.ndarray) -> dict[str, Any]:
    """Error of predictions on held-out subnets (top-1 as 0..1): RMSE, MAE, mean bias (predicted minus
    measured), Kendall tau and Spearman rank correlation."""
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    err = pred - truth
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))), "bias": float(err.mean()),
            "kendall_tau": float(kendalltau(pred, truth).statistic),
            "spearman": float(spearmanr(pred, truth).statistic), "n_train": int(n_train), "n_heldout": len(truth),
            "split": "validation", "heldout_indices": [int(i) for i in heldout]}


def residual_interval(residuals: np.ndarray, heldout_pred: np.ndarray, heldout_truth: np.ndarray,
                      source: str, coverage: float = COVERAGE) -> dict[str, Any]:
    """An interval [prediction + low, prediction + high] from the central `coverage` quantiles of
    residuals (measured minus predicted) the model did not fit, and how often it held on the held-out part."""
    tail = (1 - coverage) / 2
    low, high = (float(q) for q in np.quantile(residuals, [tail, 1 - tail]))
    miss = np.asarray(heldout_truth) - np.asarray(heldout_pred)
    held = float(np.mean((miss >= low) & (miss <= high)))
    return {"coverage": coverage, "low": low, "high": high, "from": source, "heldout_coverage": held}


def split_half_noise(correct: np.ndarray, halvings: int, rng: np.random.Generator) -> tuple[float, float]:
    """How much a top-1 moves with the images drawn, from per-image right/wrong (subnets x images): over
    `halvings` random splits into two halves, (sd over subnets of top-1 on half A minus on half B, in
    points, as the root of the mean variance; the mean Kendall tau between the halves). The offset common
    to all subnets drops out. With h images a half, a top-1 over N images has noise sd * sqrt(h / (2 N))."""
    var, taus = [], []
    for _ in range(halvings):
        half = rng.permutation(correct.shape[1]) < correct.shape[1] // 2
        a, b = 100 * correct[:, half].mean(1), 100 * correct[:, ~half].mean(1)
        var.append(np.var(a - b, ddof=1))
        taus.append(kendalltau(a, b).statistic)
    return float(np.sqrt(np.mean(var))), float(np.mean(taus))


def gaussian_tau(rho: float) -> float:
    """Kendall tau of two Gaussian variables with correlation `rho` (NaN stays NaN); the inverse is
    rho = sin(pi tau / 2)."""
    return float(2 / np.pi * np.arcsin(min(1.0, rho))) if np.isfinite(rho) else float("nan")
