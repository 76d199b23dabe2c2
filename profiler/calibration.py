"""Calibration of summed LUT entries against whole subnets measured end to end.

A linear map `measured = a * raw + b` absorbs what summing misses (fusion across blocks,
per-inference overheads). Its fidelity is measured leave-one-out, so the reported
errors are on subnets the fit did not see.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr


def fit_linear(raw: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    a, b = np.polyfit(raw, measured, 1)
    return float(a), float(b)


def fidelity(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    rel = (predicted - measured) / measured
    return {"within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
            "mean_abs_pct_error": float(np.mean(np.abs(rel)) * 100),
            "max_abs_pct_error": float(np.max(np.abs(rel)) * 100),
            "spearman": float(spearmanr(predicted, measured).statistic),
            "kendall": float(kendalltau(predicted, measured).statistic),
            "n": int(len(measured))}


def calibrate(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Fit on all points; report leave-one-out fidelity and the uncalibrated sum's fidelity."""
    raw = np.array([p["raw_ms"] for p in points])
    measured = np.array([p["measured_p50_ms"] for p in points])
    a, b = fit_linear(raw, measured)
    loo = np.empty_like(measured)
    for i in range(len(points)):
        mask = np.arange(len(points)) != i
        ai, bi = fit_linear(raw[mask], measured[mask])
        loo[i] = ai * raw[i] + bi
    return {"model": "linear", "a": a, "b": b,
            "fidelity": {**fidelity(loo, measured), "method": "leave-one-out"},
            "uncalibrated_fidelity": fidelity(raw, measured),
            "subnets": points}
