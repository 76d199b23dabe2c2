"""Calibration of summed LUT entries against whole subnets measured end to end.

`measured = a * raw + c * weight_mb + b` absorbs what summing isolated blocks misses: fusion
and per-inference overheads (a, b), and the cost of streaming a whole subnet's weights
through caches that one small block never leaves (c; on some CPUs whole subnets run 1.4-1.8x
their blocks' sum, growing with their weights). It is fitted robustly (soft-L1 loss on
relative residuals: one badly measured subnet cannot tilt it), and its fidelity is measured
leave-one-out, so the reported errors are on subnets the fit did not see.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import kendalltau, spearmanr, theilslopes


def fit_robust(raw: np.ndarray, measured: np.ndarray,
               weight_mb: np.ndarray | None = None) -> tuple[float, float, float]:
    """(a, b, c) of `measured = a * raw + c * weight_mb + b`; c is 0 without weights. Starts from
    Theil-Sen (the median of pairwise slopes), then a soft-L1 fit of the relative residuals."""
    slope, intercept, _, _ = theilslopes(measured, raw, method="joint")
    if weight_mb is None or np.ptp(weight_mb) == 0:
        return float(slope), float(intercept), 0.0
    x = np.c_[raw, weight_mb, np.ones_like(raw)]
    fit = least_squares(lambda w: (x @ w - measured) / measured, [slope, 0.0, intercept], loss="soft_l1",
                        f_scale=0.02)
    a, c, b = fit.x
    return float(a), float(b), float(c)


def _arrays(points: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    raw = np.array([p["raw_ms"] for p in points], dtype=float)
    measured = np.array([p["measured_p50_ms"] for p in points], dtype=float)
    mb = np.array([p["weight_mb"] for p in points], dtype=float) if all("weight_mb" in p for p in points) else None
    return raw, measured, mb


def _predict(fit: tuple[float, float, float], raw: np.ndarray, mb: np.ndarray | None) -> np.ndarray:
    a, b, c = fit
    return a * raw + b + (c * mb if mb is not None else 0.0)


def fidelity(predicted: np.ndarray, measured: np.ndarray, tolerance: float = 0.10) -> dict[str, float]:
    rel = (predicted - measured) / measured
    return {"within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
            "within_5pct": float(np.mean(np.abs(rel) <= 0.05)),
            "within_tolerance": float(np.mean(np.abs(rel) <= tolerance)), "tolerance_pct": 100 * tolerance,
            "mean_abs_pct_error": float(np.mean(np.abs(rel)) * 100),
            "max_abs_pct_error": float(np.max(np.abs(rel)) * 100),
            "spearman": float(spearmanr(predicted, measured).statistic),
            "kendall": float(kendalltau(predicted, measured).statistic),
            "n": int(len(measured))}


def leave_one_out(raw: np.ndarray, measured: np.ndarray, mb: np.ndarray | None = None) -> np.ndarray:
    """Each point's prediction by a fit on all the other points."""
    out = np.empty_like(measured)
    for i in range(len(raw)):
        mask = np.arange(len(raw)) != i
        fit = fit_robust(raw[mask], measured[mask], None if mb is None else mb[mask])
        out[i] = _predict(fit, raw[i:i + 1], None if mb is None else mb[i:i + 1])[0]
    return out


def outliers(points: list[dict[str, Any]], tolerance: float) -> list[int]:
    """Points whose relative residual from the robust fit is far out of line with the rest:
    above 3 robust standard deviations of the residuals and above half the tolerance."""
    raw, measured, mb = _arrays(points)
    rel = (_predict(fit_robust(raw, measured, mb), raw, mb) - measured) / measured
    scale = 1.4826 * np.median(np.abs(rel - np.median(rel)))
    return [i for i, r in enumerate(rel) if abs(r) > max(3 * scale, tolerance / 2)]


def calibrate(points: list[dict[str, Any]], tolerance: float = 0.10) -> dict[str, Any]:
    """Fit on all points; report leave-one-out fidelity and the uncalibrated sum's fidelity."""
    raw, measured, mb = _arrays(points)
    a, b, c = fit_robust(raw, measured, mb)
    loo = leave_one_out(raw, measured, mb)
    return {"model": "a * raw + c * weight_mb + b (robust soft-L1)", "a": a, "b": b, "c": c,
            "fidelity": {**fidelity(loo, measured, tolerance), "method": "leave-one-out"},
            "uncalibrated_fidelity": fidelity(raw, measured, tolerance),
            "subnets": [{**p, "loo_predicted_ms": float(v)} for p, v in zip(points, loo, strict=True)]}


def worst_points(calibration: dict[str, Any], tolerance: float) -> list[dict[str, Any]]:
    """Calibration subnets predicted (leave-one-out) outside the tolerance, worst first."""
    pts = calibration["subnets"]
    rel = [abs(p["loo_predicted_ms"] - p["measured_p50_ms"]) / p["measured_p50_ms"] for p in pts]
    order = sorted(range(len(pts)), key=lambda i: -rel[i])
    return [pts[i] for i in order if rel[i] > tolerance]
