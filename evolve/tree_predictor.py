"""Accuracy predictor: gradient-boosted regression trees on the `slots` arch features (per block slot
kernel size and expand ratio as numbers, per stage depth, resolution).

Fitted with scikit-learn (`pip install 'hwofa[bench]'`), stored as plain arrays (safetensors + JSON,
no pickle) and evaluated in numpy (evolve/_trees.py), so searching needs no scikit-learn. Chosen over
the one-hot MLP by benchmarks/predictor_compare.py. Its report: the error on held-out subnets, and a
90 % interval for a prediction from 5-fold out-of-fold residuals on the training part; where
benchmarks/predictor_at_picks.py has measured the search's picks of this very predictor, also
`at_picks`, the interval from those (searches pick where predictions came out high).
"""

from __future__ import annotations

import os
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
from evolve._trees import TreeEnsemble
from evolve.genome import feature_size, features
from hwofa.common import NUMBER, UserError, require_fields
from supernet import ArchSpec, SearchSpace, load_tensors, save_tensors

FORMAT = "hwofa-accuracy-predictor/2"
MODEL = "gradient-boosted-trees"
FEATURE_SET = "slots"
FEATURES = "resolution; per stage: depth, then per block slot kernel_size and expand_ratio (0 where inactive)"
# chosen by 5-fold cross-validation on the training part of the shipped 1000 subnets, among the grid in
# benchmarks/predictor_compare.py (gbt_grid); the held-out part played no part in the choice
HYPER = {"n_estimators": 400, "learning_rate": 0.05, "max_depth": 3, "subsample": 0.8, "min_samples_leaf": 10}


class TreePredictor:
    """Predicted validation top-1 (0..1) of archs: `predict(archs)`, or `predict_features(rows)` on
    `evolve.genome.features(space, archs, predictor.feature_set)` (the search builds them from genomes)."""

    feature_set = FEATURE_SET

    def __init__(self, space: SearchSpace, trees: TreeEnsemble, report: dict[str, Any] | None = None) -> None:
        if int(trees.feature.max()) >= feature_size(space, FEATURE_SET):
            raise ValueError("the trees split on features this space does not have")
        self.space, self.trees, self.report = space, trees, dict(report or {})

    def predict(self, archs: list[ArchSpec]) -> np.ndarray:
        return self.predict_features(features(self.space, archs, FEATURE_SET))

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        return self.trees.predict(x)

    def report_summary(self) -> dict[str, Any]:
        return {k: self.report[k] for k in SUMMARY_KEYS if k in self.report}

    def meta(self) -> dict[str, Any]:
        """What the JSON beside the weights records about the model itself."""
        return {"model": MODEL, "feature_set": FEATURE_SET, "features": FEATURES,
                "trees": {"n_trees": self.trees.n_trees, "depth": self.trees.depth, "base": self.trees.base},
                "hyper": self.report.get("hyper", HYPER)}

    def save(self, path: str | os.PathLike) -> str:
        """Write the tree arrays (safetensors); returns their sha256."""
        return save_tensors(path, self.trees.to_tensors())

    @classmethod
    def load(cls, meta: dict[str, Any], path: str | os.PathLike, space: SearchSpace) -> TreePredictor:
        """From the JSON record `meta` (already checked to belong to `space`) and its safetensors file."""
        check_record(meta, "trees", FEATURE_SET, path)
        t = meta["trees"]
        require_fields(t, {"n_trees": int, "depth": int, "base": NUMBER}, "accuracy predictor", path)
        tensors = load_tensors(path, "accuracy predictor", meta.get("weights_sha256"))
        report = stored_report(meta, ("hyper",))
        try:
            trees = TreeEnsemble.from_tensors(tensors, t["base"], t["n_trees"], t["depth"])
            return cls(space, trees, report)
        except ValueError as exc:
            raise UserError(f"accuracy predictor trees in '{path}' do not fit its JSON ({exc}); rebuild it.") from exc


def regressor(seed: int, **hyper: Any) -> Any:
    """scikit-learn's GradientBoostingRegressor with HYPER (updated by `hyper`); a UserError without scikit-learn."""
    try:
        from sklearn.ensemble import GradientBoostingRegressor
    except ImportError as exc:
        raise UserError("fitting the accuracy predictor needs scikit-learn, which is not installed: "
                        "pip install 'hwofa[bench]' (searching with a fitted predictor does not need it).") from exc
    return GradientBoostingRegressor(**{**HYPER, **hyper}, random_state=seed)


def fit_trees(space: SearchSpace, archs: list[ArchSpec], accs: np.ndarray, seed: int = 0, heldout: float = 0.2,
              split: tuple[np.ndarray, np.ndarray] | None = None, **hyper: Any) -> TreePredictor:
    """Fit on the training part of a random split (or the given (train, held-out) indices); report the
    error on the held-out part and the 90 % residual interval."""
    gen = torch.Generator().manual_seed(seed)
    train, test = split if split is not None else heldout_split(len(archs), gen, heldout)
    x, y = features(space, archs, FEATURE_SET).astype(np.float64), np.asarray(accs, np.float64)
    trees = TreeEnsemble.from_sklearn(regressor(seed, **hyper).fit(x[train], y[train]))
    pred = trees.predict(x[test])
    oof = out_of_fold(lambda: regressor(seed, **hyper), x[train], y[train], seed)
    report = {"model": MODEL, **error_report(pred, y[test], len(train), test), "hyper": {**HYPER, **hyper},
              "interval": residual_interval(y[train] - oof, pred, y[test], "5-fold out-of-fold residuals (measured "
                                            "minus predicted) on the training part")}
    return TreePredictor(space, trees, report)
