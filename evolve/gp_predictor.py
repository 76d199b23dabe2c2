"""Accuracy predictor: a Gaussian process on the `slots` arch features with a Matern 5/2 kernel that
has one length scale per (standardised) feature (ARD) plus white noise, so it learns which block slots
matter and how noisy the measured top-1 is.

benchmarks/predictor_compare.py ranks it first by 5-fold CV on the shipped supernet's training
subnets (Kendall tau 0.751 against 0.721 for the trees). Fitted with scikit-learn (`pip install
'hwofa[bench]'`; ~20 min for 800 subnets on one core: one fit, and five for the interval's 5-fold CV); stored
as plain arrays (safetensors + JSON, no pickle): the standardisation, the length scales, the training
rows and the fitted weights (alpha), and evaluated in numpy, so searching needs no scikit-learn.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch

from evolve._heldout import (
    SUMMARY_KEYS,
    check_record,
    error_report,
    heldout_split,
    out_of_fold,
    residual_interval,
    stored_report,
)
from evolve.genome import feature_size, features
from hwofa.common import NUMBER, UserError, require_fields
from supernet import ArchSpec, SearchSpace, load_tensors, save_tensors

FORMAT = "hwofa-accuracy-predictor/3"
MODEL = "gaussian-process-ard"
FEATURE_SET = "slots"
FEATURES = "resolution; per stage: depth, then per block slot kernel_size and expand_ratio (0 where inactive)"
KERNEL = "constant * Matern(nu=2.5, one length scale per standardised feature) + white noise"
_ARRAYS = ("x_mean", "x_scale", "length_scale", "x_train", "alpha")
_SQRT5 = np.sqrt(5.0)
_CHUNK = 256


class GPPredictor:
    """Predicted validation top-1 (0..1) of archs: `predict(archs)`, or `predict_features(rows)` on
    `evolve.genome.features(space, archs, predictor.feature_set)` (the search builds them from genomes)."""

    feature_set = FEATURE_SET

    def __init__(self, space: SearchSpace, arrays: dict[str, np.ndarray], scalars: dict[str, float],
                 report: dict[str, Any] | None = None) -> None:
        d = feature_size(space, FEATURE_SET)
        a = {k: np.array(arrays[k], np.float64) for k in _ARRAYS}  # own copies: the folded values below stay valid
        sc = {k: float(scalars[k]) for k in ("constant", "y_mean", "y_std")}
        if not all(a[k].shape == (d,) for k in ("x_mean", "x_scale", "length_scale")) or a["x_train"].ndim != 2 \
                or a["x_train"].shape[1] != d or a["alpha"].shape != (a["x_train"].shape[0],) or not len(a["alpha"]):
            raise ValueError(f"array shapes do not fit {d} features")
        if not (all(np.isfinite(v).all() for v in a.values()) and all(np.isfinite(v) for v in sc.values())):
            raise ValueError("a value is not finite")
        if not (np.all(a["x_scale"] > 0) and np.all(a["length_scale"] > 0) and sc["y_std"] > 0 and sc["constant"] > 0):
            raise ValueError("scales must be positive")
        self.space, self.report = space, dict(report or {})
        for v in a.values():
            v.setflags(write=False)
        self.arrays, self.scalars = a, sc
        train = a["x_train"] / a["length_scale"]  # rows standardised, then divided by the length scales
        self._inv = 1.0 / (a["x_scale"] * a["length_scale"])
        self._cross = np.ascontiguousarray(-2.0 * train.T)
        self._train_sq = (train ** 2).sum(1)
        self._w = sc["constant"] * a["alpha"] * sc["y_std"]

    def predict(self, archs: list[ArchSpec]) -> np.ndarray:
        return self.predict_features(features(self.space, archs, FEATURE_SET))

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        out = np.empty(len(x))
        for i in range(0, len(x), _CHUNK):  # chunks keep the (rows x training rows) temporaries in cache
            z = (x[i:i + _CHUNK] - self.arrays["x_mean"]) * self._inv
            r = z @ self._cross
            r += (z * z).sum(1)[:, None]
            r += self._train_sq  # squared scaled distance to every training row
            np.sqrt(np.maximum(r, 0.0, out=r), out=r)
            r *= _SQRT5
            k = r * r / 3 + r + 1
            k *= np.exp(-r)  # Matern 5/2
            out[i:i + _CHUNK] = k @ self._w
        return out + self.scalars["y_mean"]

    def report_summary(self) -> dict[str, Any]:
        return {k: self.report[k] for k in SUMMARY_KEYS if k in self.report}

    def meta(self) -> dict[str, Any]:
        """What the JSON beside the weights records about the model itself."""
        return {"model": MODEL, "feature_set": FEATURE_SET, "features": FEATURES, "kernel": KERNEL,
                "gp": {**self.scalars, "noise": self.report.get("noise"), "n_train": len(self.arrays["alpha"])}}

    def save(self, path: str | os.PathLike) -> str:
        """Write the arrays (safetensors); returns their sha256."""
        return save_tensors(path, {k: torch.from_numpy(v.copy()) for k, v in self.arrays.items()})

    @classmethod
    def load(cls, meta: dict[str, Any], path: str | os.PathLike, space: SearchSpace) -> GPPredictor:
        """From the JSON record `meta` (already checked to belong to `space`) and its safetensors file."""
        check_record(meta, "gp", FEATURE_SET, path)
        require_fields(meta["gp"], {"constant": NUMBER, "y_mean": NUMBER, "y_std": NUMBER}, "accuracy predictor", path)
        tensors = load_tensors(path, "accuracy predictor", meta.get("weights_sha256"))
        report = stored_report(meta, ("noise",))
        try:
            return cls(space, {k: tensors[k].to(torch.float64).numpy() for k in _ARRAYS}, meta["gp"], report)
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            raise UserError(f"accuracy predictor arrays in '{path}' do not fit its JSON ({exc}); rebuild it.") from exc


def regressor(seed: int, n_features: int = 1) -> Any:
    """scikit-learn's GP (standardised features, normalised target); a UserError without scikit-learn."""
    try:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as exc:
        raise UserError("fitting the accuracy predictor needs scikit-learn, which is not installed: "
                        "pip install 'hwofa[bench]' (searching with a fitted predictor does not need it).") from exc
    kernel = ConstantKernel() * Matern(length_scale=np.full(n_features, 5.0), length_scale_bounds=(1e-1, 1e4),
                                       nu=2.5) + WhiteKernel(0.1)
    return make_pipeline(StandardScaler(), GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed))


def from_sklearn(space: SearchSpace, pipe: Any, report: dict[str, Any] | None = None) -> GPPredictor:
    """The numpy predictor of a fitted `regressor()` pipeline."""
    scaler, gp = pipe[0], pipe[-1]
    prod, white = gp.kernel_.k1, gp.kernel_.k2
    arrays = {"x_mean": scaler.mean_, "x_scale": scaler.scale_, "length_scale": np.broadcast_to(
        np.asarray(prod.k2.length_scale, np.float64), scaler.mean_.shape), "x_train": gp.X_train_,
        "alpha": np.asarray(gp.alpha_).reshape(-1)}
    scalars = {"constant": prod.k1.constant_value, "y_mean": float(np.ravel(gp._y_train_mean)[0]),
               "y_std": float(np.ravel(gp._y_train_std)[0])}
    return GPPredictor(space, arrays, scalars, {**(report or {}), "noise": float(white.noise_level)})


def fit_gp(space: SearchSpace, archs: list[ArchSpec], accs: np.ndarray, seed: int = 0, heldout: float = 0.2,
           split: tuple[np.ndarray, np.ndarray] | None = None) -> GPPredictor:
    """Fit on the training part of a random split (or the given (train, held-out) indices); report the
    error on the held-out part and the 90 % residual interval (5-fold out-of-fold residuals)."""
    gen = torch.Generator().manual_seed(seed)
    train, test = split if split is not None else heldout_split(len(archs), gen, heldout)
    x, y = features(space, archs, FEATURE_SET).astype(np.float64), np.asarray(accs, np.float64)
    d = x.shape[1]
    with warnings.catch_warnings():  # a length scale at its bound (a slot that matters a lot) is no error
        warnings.filterwarnings("ignore", message="The optimal value found")
        model = from_sklearn(space, regressor(seed, d).fit(x[train], y[train]))
        oof = out_of_fold(lambda: regressor(seed, d), x[train], y[train], seed)
    pred = model.predict_features(x[test])
    model.report.update({"model": MODEL, **error_report(pred, y[test], len(train), test), "interval": residual_interval(
        y[train] - oof, pred, y[test], "5-fold out-of-fold residuals (measured minus predicted) on the training part")})
    return model
