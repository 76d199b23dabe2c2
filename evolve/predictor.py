"""Accuracy predictors: build one for a supernet (measure subnets, fit, write) and load it back.

A predictor is shipped with its training set and its held-out error (RMSE, Kendall tau on subnets it
did not see). `build_predictor` fits a Gaussian process with a length scale per feature
(evolve/gp_predictor.py, format hwofa-accuracy-predictor/3, the default and what ships) or, with
`model="trees"`, gradient-boosted trees (evolve/tree_predictor.py, format /2); the one-hot MLP below
(format /1) is still read, and `fit` still trains it for comparison (benchmarks/predictor_compare.py).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from evolve import gp_predictor, tree_predictor
from evolve._heldout import SUMMARY_KEYS, error_report, heldout_split
from evolve.genome import feature_size, features
from evolve.gp_predictor import GPPredictor, fit_gp
from evolve.measure import measure_subnets
from evolve.tree_predictor import TreePredictor, fit_trees
from hwofa.common import UserError, atomic_write_json, read_json, require_fields
from supernet import ArchSpec, SearchSpace, load_supernet, load_tensors

FORMAT = "hwofa-accuracy-predictor/1"
FORMATS = (gp_predictor.FORMAT, tree_predictor.FORMAT, FORMAT)
# `hwofa predictor --model`: name -> (module with FORMAT / regressor, fit function, class with .load)
MODELS = {"gp-ard": (gp_predictor, fit_gp, GPPredictor), "trees": (tree_predictor, fit_trees, TreePredictor)}
DEFAULT_MODEL = "gp-ard"


class AccuracyPredictor(nn.Module):
    """The one-hot MLP (format /1)."""

    feature_set = "onehot"

    def __init__(self, space: SearchSpace, hidden: tuple[int, ...] = (128, 128)) -> None:
        super().__init__()
        self.space, self.hidden = space, tuple(hidden)
        dims = [feature_size(space), *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.mlp = nn.Sequential(*layers, nn.Linear(dims[-1], 1))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))
        self.report: dict[str, Any] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x).squeeze(-1) * self.y_std + self.y_mean

    def predict(self, archs: list[ArchSpec]) -> np.ndarray:
        """Predicted validation top-1 (0..1) of each arch."""
        return self.predict_features(features(self.space, archs))

    @torch.no_grad()
    def predict_features(self, x: np.ndarray) -> np.ndarray:
        """`predict` on rows of `features` (the search builds them straight from genomes). On one thread:
        waking torch's pool for an MLP this small costs milliseconds per call on a busy machine."""
        self.eval()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self(torch.from_numpy(x)).numpy().astype(np.float64)
        finally:
            torch.set_num_threads(threads)

    def report_summary(self) -> dict[str, Any]:
        return {k: self.report[k] for k in SUMMARY_KEYS if k in self.report}


def fit(space: SearchSpace, archs: list[ArchSpec], accs: np.ndarray, gen: torch.Generator, heldout: float = 0.2,
        epochs: int = 600, hidden: tuple[int, ...] = (128, 128),
        split: tuple[np.ndarray, np.ndarray] | None = None) -> AccuracyPredictor:
    """Train on a random (1 - heldout) part (or the given (train, held-out) indices); report RMSE and
    Kendall tau on the rest."""
    train, test = (torch.from_numpy(np.asarray(i)) for i in (split or heldout_split(len(archs), gen, heldout)))
    x = torch.from_numpy(features(space, archs))
    y = torch.tensor(accs, dtype=torch.float32)
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    model = AccuracyPredictor(space, hidden)
    model.y_mean.fill_(float(y[train].mean()))
    model.y_std.fill_(float(y[train].std().clamp_min(1e-4)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(epochs):
        loss = ((model(x[train]) - y[train]) / model.y_std).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = model(x[test]).numpy()
    model.report = {"model": "mlp", **error_report(pred, y[test].numpy(), len(train), test.numpy())}
    return model


def build_predictor(run: str | os.PathLike, n_subnets: int = 1000, seed: int = 0,
                    data_dir: str | os.PathLike | None = None, progress: bool = True,
                    model: str = DEFAULT_MODEL) -> dict[str, Any]:
    """Measure subnets (resumable), fit `model` (one of MODELS: the ARD Gaussian process or gradient-boosted
    trees), write accuracy_predictor.{safetensors,json}."""
    run = Path(run)
    t0 = time.time()
    net, meta = load_supernet(run)
    if model not in MODELS:
        raise UserError(f"unknown predictor model '{model}'; known: {', '.join(MODELS)}.")
    module, fit_model, _ = MODELS[model]
    module.regressor(seed)  # no scikit-learn: refused before any subnet is measured
    samples = measure_subnets(run, n_subnets, seed, data_dir, progress)
    archs = [ArchSpec.from_dict(s["arch"]) for s in samples]
    fitted = fit_model(net.space, archs, np.array([s["val_top1"] for s in samples]), seed)
    digest = fitted.save(run / "accuracy_predictor.safetensors")
    report = {"format": module.FORMAT, "space": net.space.to_dict(), "space_hash": net.space.space_hash(),
              "supernet_sha256": meta.weights_sha256, "weights_sha256": digest, **fitted.meta(), "seed": seed,
              **fitted.report, "seconds": round(time.time() - t0, 1), "samples": samples}
    atomic_write_json(run / "accuracy_predictor.json", report)
    return {k: v for k, v in report.items() if k not in ("samples", "space", "heldout_indices")}


def load_predictor(run: str | os.PathLike, space: SearchSpace,
                   supernet_sha256: str | None = None) -> GPPredictor | TreePredictor | AccuracyPredictor:
    """Load and check a predictor against the supernet it must belong to. A caller that has loaded the
    supernet passes its `weights_sha256`, so it is not loaded again for the check."""
    run = Path(run)
    path = run / "accuracy_predictor.json"
    if not path.is_file():
        raise UserError(f"no accuracy predictor in '{run}'; build one with `hwofa predictor --supernet {run}`.")
    meta = read_json(path, "accuracy predictor")
    if not isinstance(meta, dict) or meta.get("format") not in FORMATS:
        raise UserError(f"'{path}' is not a hwofa accuracy predictor this version reads (formats {list(FORMATS)}); "
                        f"rebuild it with `hwofa predictor --supernet {run}` (measured subnets are reused).")
    if supernet_sha256 is None:
        supernet_sha256 = load_supernet(run)[1].weights_sha256
    model = next((name for name, (module, _, _) in MODELS.items() if module.FORMAT == meta["format"]), None)
    if meta.get("space_hash") != space.space_hash() or meta.get("supernet_sha256") != supernet_sha256:
        again = f" --model {model}" if model not in (None, DEFAULT_MODEL) else ""
        raise UserError(f"the accuracy predictor in '{run}' was built for another supernet; rebuild it with "
                        f"`hwofa predictor --supernet {run}{again}`.")
    weights = run / "accuracy_predictor.safetensors"
    if model is not None:
        return MODELS[model][2].load(meta, weights, space)
    return _load_mlp(meta, weights, space, path)


def _load_mlp(meta: dict[str, Any], weights: Path, space: SearchSpace, path: Path) -> AccuracyPredictor:
    require_fields(meta, {"hidden": list}, "accuracy predictor", path)
    if not meta["hidden"] or not all(isinstance(h, int) and h > 0 for h in meta["hidden"]):
        raise UserError(f"'{path}': 'hidden' must list positive layer widths; rebuild the predictor.")
    model = AccuracyPredictor(space, tuple(meta["hidden"]))
    try:
        model.load_state_dict(load_tensors(weights, "accuracy predictor", meta.get("weights_sha256")))
    except RuntimeError as exc:
        raise UserError(f"accuracy predictor weights in '{path.parent}' do not fit its JSON ({exc}).") from exc
    model.report = {"model": "mlp", **{k: meta[k] for k in SUMMARY_KEYS if k in meta}}
    return model.eval()
