"""How much of the shipped predictor's held-out Kendall tau is lost to the labels it is scored against.

The predictor is fitted on, and its held-out figures scored against, top-1 on the 5 000 validation
images. A 5 000-image top-1 carries a per-subnet error of a fifth of a point (predictor_compare's noise
floor), about a third of the spread between subnets, so even a perfect predictor would score well below
tau 1 against it. Here the 200 held-out subnets (the predictor never saw them) are measured again on the
10 000 test images, the same way (BN recalibrated on training images, the ONNX model on ONNX Runtime),
and the shipped predictor, unchanged, is scored against:
- `validation`: the stored 5 000-image labels (the figure accuracy_predictor.json reports);
- `test`: the 10 000 test images;
- `pooled`: all 15 000 images (5 000 validation + 10 000 test), the least noisy label there is here.
The test images fit nothing and choose nothing: this only scores a finished predictor against better
measurements of subnets it did not see.

Noise per label size comes from the test images themselves: 20 random halvings into two 5 000-image
halves; sd(half A - half B) / sqrt(2) over subnets is the per-subnet error of a 5 000-image top-1 (the
offset common to all subnets removed), scaled by sqrt(5000 / N) for N images. With it, the Gaussian ceiling
tau_max = (2 / pi) asin(sqrt(1 - noise^2 / var)) is what a predictor that knew every subnet's noise-free
top-1 would score against an N-image label. A 90 % bootstrap interval (over held-out subnets) goes with
each tau.

Three measurements of the same subnets with independent errors (the predictor, fitted on other subnets;
the validation labels; the test labels) also give each one's correlation with the noise-free top-1
without any noise model (correction for attenuation: r_pv = rho_p rho_v, r_pt = rho_p rho_t, r_vt =
rho_v rho_t, each r from Kendall tau as sin(pi tau / 2), Gaussian); `triad` reports rho and the tau it
implies against noise-free top-1. Independence is an assumption that fails one way: the predictor was
fitted on other subnets' labels over the same 5 000 validation images, and subnets sharing weights err
on the same images, so it partly learns the validation images' own noise; that inflates r_pv and
with it the triad's rho for the predictor. `test_only` avoids the validation labels: rho_t from the
test halves' agreement (Spearman-Brown to 10 000 images), then rho_p = r_pt / rho_t.

    python benchmarks/predictor_labels.py          # 200 subnets x 10 000 images: 33 min on this loaded 2-core host
    python benchmarks/predictor_labels.py --rescore benchmarks/results/predictor_labels.json   # no measuring
writes benchmarks/results/predictor_labels.json (RMSE and bias in points)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from evolve import load_predictor
from evolve._heldout import gaussian_tau, split_half_noise
from evolve.measure import measure_archs
from hwofa.common import SHIPPED_RUN, atomic_write_json, read_json
from supernet import ArchSpec, SearchSpace

RESULTS = Path(__file__).resolve().parent / "results" / "predictor_labels.json"
HALVINGS = 20
BOOTSTRAP = 2000


def tau_with_interval(pred: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    boot = [kendalltau(pred[i], truth[i]).statistic
            for i in (rng.integers(0, len(pred), len(pred)) for _ in range(BOOTSTRAP))]
    lo, hi = np.nanquantile(boot, [0.05, 0.95])  # a resample of tied subnets has no tau
    return {"kendall_tau": float(kendalltau(pred, truth).statistic), "tau_90_low": float(lo), "tau_90_high": float(hi)}


def _r(a: np.ndarray, b: np.ndarray) -> float:
    """The correlation a Kendall tau implies for Gaussian variables."""
    return float(np.sin(np.pi / 2 * kendalltau(a, b).statistic))


def _rho(pred: np.ndarray, val: np.ndarray, test: np.ndarray) -> dict[str, float]:
    r = {k: _r(a, b)
         for k, (a, b) in {"pv": (pred, val), "pt": (pred, test), "vt": (val, test)}.items()}
    if min(r.values()) <= 0 or not all(np.isfinite(list(r.values()))):
        return {"predictor": float("nan"), "validation": float("nan"), "test": float("nan")}
    return {"predictor": np.sqrt(r["pv"] * r["pt"] / r["vt"]), "validation": np.sqrt(r["pv"] * r["vt"] / r["pt"]),
            "test": np.sqrt(r["pt"] * r["vt"] / r["pv"])}


def attenuation(pred: np.ndarray, val: np.ndarray, test: np.ndarray,
                rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """Each measurement's correlation with noise-free top-1 (rho) and the Kendall tau it implies, with a
    90 % bootstrap interval over subnets."""
    boot = [_rho(pred[i], val[i], test[i]) for i in (rng.integers(0, len(pred), len(pred)) for _ in range(BOOTSTRAP))]
    out = {}
    for k, v in _rho(pred, val, test).items():
        lo, hi = np.nanquantile([gaussian_tau(b[k]) for b in boot], [0.05, 0.95])
        out[k] = {"rho": float(v), "tau_against_noise_free": gaussian_tau(v), "tau_90_low": float(lo),
                  "tau_90_high": float(hi)}
    return out


def scored(pred: np.ndarray, truth: np.ndarray, images: int, noise_5000: float,
           rng: np.random.Generator) -> dict[str, Any]:
    err = 100 * (pred - truth)
    noise = noise_5000 * np.sqrt(5000 / images)
    var = float(np.var(100 * truth, ddof=1))
    return {"images": images, **tau_with_interval(pred, truth, rng),
            "rmse_points": float(np.sqrt(np.mean(err ** 2))), "bias_points": float(err.mean()),
            "rmse_offset_removed_points": float(np.std(err)), "label_sd_points": float(np.sqrt(var)),
            "label_noise_sd_points": float(noise),
            "tau_ceiling_gaussian": gaussian_tau(np.sqrt(max(0.0, 1 - noise ** 2 / var)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=SHIPPED_RUN, help="supernet run folder with its predictor")
    ap.add_argument("--subnets", type=int, default=None, help="only the first N held-out subnets (a quick look)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--rescore", type=Path, default=None, metavar="JSON",
                    help="take the test top-1 and noise figures from this earlier results file instead of measuring")
    args = ap.parse_args()
    t0 = time.time()
    meta = read_json(args.run / "accuracy_predictor.json", "accuracy predictor")
    space = SearchSpace.from_dict(meta["space"])
    predictor = load_predictor(args.run, space)
    held = meta["heldout_indices"][:args.subnets]
    samples = [meta["samples"][i] for i in held]
    archs = [ArchSpec.from_dict(s["arch"]) for s in samples]
    val = np.array([s["val_top1"] for s in samples])
    pred = np.asarray(predictor.predict(archs), np.float64)

    if args.rescore:
        old = read_json(args.rescore, "predictor_labels results")
        by_index = {row["index"]: row["test_top1"] for row in old["rows"]}
        test = np.array([by_index[i] for i in held])
        n_test, nz = old["against"]["test"]["images"], old["noise"]
        diff_sd, split_tau = nz["halves_difference_sd_points"], nz["split_half_tau_5000_vs_5000_test_images"]
    else:
        correct = np.array(measure_archs(args.run, archs, per_image=True, split="test"))  # (subnets, 10 000)
        test, n_test = correct.mean(1), correct.shape[1]
        diff_sd, split_tau = split_half_noise(correct, HALVINGS, np.random.default_rng(0))
    noise_5000 = diff_sd * np.sqrt(n_test / 2 / 2 / 5000)  # halves of n_test / 2 images
    n_val = read_json(args.run / "supernet.json", "supernet")["dataset"]["val_size"]
    pooled = (n_val * val + n_test * test) / (n_val + n_test)

    rng = np.random.default_rng(1)  # bootstrap resamples, the same whether measured or re-scored
    triad = attenuation(pred, val, test, rng)
    r_half = np.sin(np.pi / 2 * split_tau)
    rho_t = float(np.sqrt(2 * r_half / (1 + r_half)))  # Spearman-Brown: two halves -> all test images
    rho_p = _r(pred, test) / rho_t
    test_only = {"test_rho": rho_t, "predictor_rho": rho_p, "predictor_tau_against_noise_free": gaussian_tau(rho_p)}
    result = {
        "run": str(args.run), "heldout_subnets": len(held), "test_images": n_test, "predictor": meta["model"],
        "predictor_heldout_tau_reported": meta["kendall_tau"],
        "noise": {"sd_points_5000_images": float(noise_5000), "halves_difference_sd_points": float(diff_sd),
                  "halvings": HALVINGS,
                  "split_half_tau_5000_vs_5000_test_images": split_tau,
                  "validation_vs_test_tau": float(kendalltau(val, test).statistic),
                  "validation_minus_test_sd_points": float(100 * np.std(val - test, ddof=1)),
                  "validation_minus_test_sd_expected_points": float(noise_5000 * np.sqrt(1 + 5000 / n_test))},
        "triad": triad, "test_only": test_only,
        "against": {"validation": scored(pred, val, n_val, noise_5000, rng),
                    "test": scored(pred, test, n_test, noise_5000, rng),
                    "pooled": scored(pred, pooled, n_val + n_test, noise_5000, rng)},
        "command": "python benchmarks/predictor_labels.py" + (f" --rescore {args.rescore}" if args.rescore else ""),
        "loadavg_1m": os.getloadavg()[0],
        "seconds": round(time.time() - t0),
        "measured_seconds": old.get("measured_seconds", old["seconds"]) if args.rescore else round(time.time() - t0),
        "rows": [{"index": int(i), "predicted": float(p), "validation_top1": float(v), "test_top1": float(t)}
                 for i, p, v, t in zip(held, pred, val, test, strict=True)]}
    atomic_write_json(args.results, result)
    for name, r in result["against"].items():
        print(f"against {name:>10} ({r['images']:>5} images): tau {r['kendall_tau']:.3f} "
              f"[{r['tau_90_low']:.3f}, {r['tau_90_high']:.3f}], ceiling {r['tau_ceiling_gaussian']:.3f}, "
              f"RMSE {r['rmse_points']:.3f} (offset removed {r['rmse_offset_removed_points']:.3f}) points")
    nz = result["noise"]
    print(f"noise of a 5000-image top-1: sd {noise_5000:.3f} points; validation vs test tau "
          f"{nz['validation_vs_test_tau']:.3f}, sd(validation - test) {nz['validation_minus_test_sd_points']:.3f} "
          f"points (halvings expect {nz['validation_minus_test_sd_expected_points']:.3f})")
    print("against noise-free top-1 (triad): " + ", ".join(
        f"{k} tau {v['tau_against_noise_free']:.3f} [{v['tau_90_low']:.3f}, {v['tau_90_high']:.3f}]"
        for k, v in triad.items()) + "; test-only route: predictor tau "
        f"{test_only['predictor_tau_against_noise_free']:.3f} -> {args.results}")


if __name__ == "__main__":
    main()
