"""Accuracy predictor: a small MLP on arch features, shipped with its training set and its
held-out error (RMSE, Kendall tau on subnets it did not see)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau
from torch import nn

from evolve.genome import feature_size, features
from evolve.measure import measure_subnets
from hwofa.common import UserError, atomic_write_json, read_json, require_fields
from supernet import ArchSpec, SearchSpace, load_supernet, load_tensors, save_tensors

FORMAT = "hwofa-accuracy-predictor/1"


class AccuracyPredictor(nn.Module):
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
        keys = ("rmse", "kendall_tau", "mae", "n_train", "n_heldout", "split")
        return {k: self.report[k] for k in keys if k in self.report}


def fit(space: SearchSpace, archs: list[ArchSpec], accs: np.ndarray, gen: torch.Generator, heldout: float = 0.2,
        epochs: int = 600, hidden: tuple[int, ...] = (128, 128)) -> AccuracyPredictor:
    """Train on a random (1 - heldout) part; report RMSE and Kendall tau on the rest."""
    n = len(archs)
    if n < 10:
        raise UserError(f"an accuracy predictor needs at least 10 measured subnets, got {n}.")
    perm = torch.randperm(n, generator=gen)
    n_test = max(2, int(round(heldout * n)))
    test, train = perm[:n_test], perm[n_test:]
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
    truth = y[test].numpy()
    model.report = {"rmse": float(np.sqrt(np.mean((pred - truth) ** 2))), "mae": float(np.mean(np.abs(pred - truth))),
                    "kendall_tau": float(kendalltau(pred, truth).statistic), "n_train": len(train),
                    "n_heldout": n_test, "split": "validation", "heldout_indices": test.tolist()}
    return model


def build_predictor(run: str | os.PathLike, n_subnets: int = 500, seed: int = 0,
                    data_dir: str | os.PathLike | None = None, progress: bool = True) -> dict[str, Any]:
    """Measure subnets (resumable), fit the MLP, write accuracy_predictor.{safetensors,json}."""
    run = Path(run)
    t0 = time.time()
    net, meta = load_supernet(run)
    samples = measure_subnets(run, n_subnets, seed, data_dir, progress)
    archs = [ArchSpec.from_dict(s["arch"]) for s in samples]
    model = fit(net.space, archs, np.array([s["val_top1"] for s in samples]), torch.Generator().manual_seed(seed))
    digest = save_tensors(run / "accuracy_predictor.safetensors", model.state_dict())
    report = {"format": FORMAT, "space": net.space.to_dict(), "space_hash": net.space.space_hash(),
              "supernet_sha256": meta.weights_sha256, "weights_sha256": digest, "hidden": list(model.hidden),
              "seed": seed, "features": "one-hot resolution + per block slot one-hot kernel_size, expand_ratio",
              **model.report, "seconds": round(time.time() - t0, 1), "samples": samples}
    atomic_write_json(run / "accuracy_predictor.json", report)
    return {k: v for k, v in report.items() if k not in ("samples", "space", "heldout_indices")}


def load_predictor(run: str | os.PathLike, space: SearchSpace,
                   supernet_sha256: str | None = None) -> AccuracyPredictor:
    """Load and check a predictor against the supernet it must belong to. A caller that has loaded the
    supernet passes its `weights_sha256`, so it is not loaded again for the check."""
    run = Path(run)
    path = run / "accuracy_predictor.json"
    if not path.is_file():
        raise UserError(f"no accuracy predictor in '{run}'; build one with `hwofa predictor --supernet {run}`.")
    meta = read_json(path, "accuracy predictor")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"'{path}' is not a hwofa accuracy predictor (format '{FORMAT}').")
    if supernet_sha256 is None:
        supernet_sha256 = load_supernet(run)[1].weights_sha256
    if meta.get("space_hash") != space.space_hash() or meta.get("supernet_sha256") != supernet_sha256:
        raise UserError(f"the accuracy predictor in '{run}' was built for another supernet; rebuild it with "
                        f"`hwofa predictor --supernet {run}`.")
    require_fields(meta, {"hidden": list}, "accuracy predictor", path)
    if not meta["hidden"] or not all(isinstance(h, int) and h > 0 for h in meta["hidden"]):
        raise UserError(f"'{path}': 'hidden' must list positive layer widths; rebuild the predictor.")
    model = AccuracyPredictor(space, tuple(meta["hidden"]))
    try:
        model.load_state_dict(load_tensors(run / "accuracy_predictor.safetensors", "accuracy predictor",
                                           meta.get("weights_sha256")))
    except RuntimeError as exc:
        raise UserError(f"accuracy predictor weights in '{run}' do not fit its JSON ({exc}).") from exc
    model.report = {k: meta[k] for k in ("rmse", "kendall_tau", "mae", "n_train", "n_heldout", "split") if k in meta}
    return model.eval()
