"""The ARD Gaussian-process predictor: numpy evaluation equal to scikit-learn's, fit report, the search
cache feeding it its features, build/save/load round trip through `hwofa predictor --model gp-ard`,
bad files refused with a message."""

import json
import random
import shutil

import numpy as np
import pytest

from evolve import GPPredictor, build_predictor, encode, features, fit_gp, load_predictor, sample_archs
from evolve._fast import AccuracyCache, GenomeLayout
from evolve.genome import feature_size
from evolve.gp_predictor import from_sklearn, regressor
from hwofa.common import UserError
from supernet import ArchSpec, SearchSpace
from tests.conftest import TINY_SPACE

pytest.importorskip("sklearn")


def synthetic(space, n, seed=0):
    """Resolution plus the first slot's kernel of each stage matter; the deep slots do not."""
    archs = sample_archs(space, n, seed)
    rng = np.random.default_rng(seed)
    y = np.array([0.85 + 0.003 * a.resolution / 4 + sum(0.002 * (s[0].kernel_size > 3) for s in a.stages)
                  for a in archs])
    return archs, y + rng.normal(0, 0.0005, n)


def test_numpy_gp_equals_sklearn():
    space = SearchSpace()
    archs, y = synthetic(space, 70)
    x = features(space, archs, "slots").astype(np.float64)
    pipe = regressor(0, x.shape[1]).fit(x[:60], y[:60])
    model = from_sklearn(space, pipe)
    np.testing.assert_allclose(model.predict_features(x), pipe.predict(x), rtol=0, atol=1e-10)
    # the learned length scales single out what matters: resolution shorter than a deep slot's expand ratio
    ls = model.arrays["length_scale"]
    assert ls[0] < ls[9] and model.report["noise"] > 0


def test_fit_reports_error_and_interval_and_feeds_the_search():
    space = SearchSpace()
    archs, y = synthetic(space, 60)
    model = fit_gp(space, archs, y, seed=0)
    rep = model.report_summary()
    assert rep["model"] == "gaussian-process-ard" and (rep["n_train"], rep["n_heldout"]) == (48, 12)
    assert rep["kendall_tau"] > 0.5 and rep["rmse"] < 0.6 * np.std(y)  # 12 held-out subnets: a loose bound
    iv = rep["interval"]
    assert iv["low"] < 0 < iv["high"] and iv["coverage"] == 0.9
    layout = GenomeLayout(space)
    rng = random.Random(0)
    genomes = [encode(space, space.sample(rng)) for _ in range(30)]
    got = AccuracyCache(layout, model)([layout.key(g) for g in genomes], genomes)
    np.testing.assert_allclose(got, model.predict([layout.arch(layout.key(g)) for g in genomes]), atol=1e-12)


@pytest.fixture()
def gp_run(tiny_run_with_predictor, tmp_path):
    """A copy each test may change of the session run, whose predictor build_predictor built with the
    default model, the GP (tests/conftest.py)."""
    return shutil.copytree(tiny_run_with_predictor, tmp_path / "run")


def test_build_save_load_round_trip(gp_run):
    meta = json.loads((gp_run / "accuracy_predictor.json").read_text())
    assert meta["format"] == "hwofa-accuracy-predictor/3" and meta["model"] == "gaussian-process-ard"
    space = SearchSpace.from_dict(TINY_SPACE)
    loaded = load_predictor(gp_run, space)
    assert isinstance(loaded, GPPredictor)
    archs = [ArchSpec.from_dict(s["arch"]) for s in meta["samples"]]
    refit = fit_gp(space, archs, np.array([s["val_top1"] for s in meta["samples"]]), seed=meta["seed"])
    np.testing.assert_allclose(loaded.predict(archs), refit.predict(archs), rtol=0, atol=1e-12)
    assert loaded.report_summary() == json.loads(json.dumps(refit.report_summary()))
    assert loaded.meta()["gp"]["noise"] == pytest.approx(refit.report["noise"])


@pytest.mark.parametrize("change, needle", [
    (lambda m: {**m, "gp": {**m["gp"], "y_std": "x"}}, "y_std"),
    (lambda m: {k: v for k, v in m.items() if k != "gp"}, "lacks the field 'gp'"),
    (lambda m: {**m, "feature_set": "onehot"}, "rebuild the predictor"),
    (lambda m: {**m, "weights_sha256": "0" * 64}, "does not match the sha256"),
    (lambda m: {**m, "gp": {**m["gp"], "y_std": 0}}, "do not fit its JSON"),
    (lambda m: {**m, "gp": {**m["gp"], "y_mean": 10 ** 400}}, "do not fit its JSON"),
])
def test_bad_gp_files_are_user_errors(gp_run, change, needle):
    path = gp_run / "accuracy_predictor.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    with pytest.raises(UserError, match=needle):
        load_predictor(gp_run, SearchSpace.from_dict(TINY_SPACE))


def test_arrays_that_do_not_fit_are_refused():
    space = SearchSpace()
    d = feature_size(space, "slots")
    good = {"x_mean": np.zeros(d), "x_scale": np.ones(d), "length_scale": np.ones(d), "x_train": np.zeros((3, d)),
            "alpha": np.zeros(3)}
    scalars = {"constant": 1.0, "y_mean": 0.9, "y_std": 0.01}
    assert GPPredictor(space, good, scalars).predict([space.smallest()])[0] == pytest.approx(0.9)
    for bad in ({"alpha": np.zeros(4)}, {"x_train": np.zeros((3, d + 1))}, {"length_scale": np.zeros(d)},
                {"x_mean": np.full(d, np.nan)}, {"x_train": np.zeros((0, d)), "alpha": np.zeros(0)}):
        with pytest.raises(ValueError):
            GPPredictor(space, {**good, **bad}, scalars)
    for bad in ({"y_std": 0.0}, {"y_std": float("nan")}, {"constant": float("inf")}, {"constant": -1.0}):
        with pytest.raises(ValueError):
            GPPredictor(space, good, {**scalars, **bad})


def test_cli_offers_every_model():
    from evolve.predictor import MODELS
    from hwofa.cli import build_parser

    for model in MODELS:
        assert build_parser().parse_args(["predictor", "--supernet", "R", "--model", model]).model == model
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predictor", "--supernet", "R", "--model", "forest"])


def test_default_model_is_the_shipped_gp():
    import inspect

    from hwofa.cli import build_parser

    default = inspect.signature(build_predictor).parameters["model"].default
    assert build_parser().parse_args(["predictor", "--supernet", "R"]).model == default == "gp-ard"


def test_rebuild_hint_names_the_model(gp_run, tmp_path):
    space = SearchSpace.from_dict(TINY_SPACE)
    with pytest.raises(UserError, match="another supernet") as gp_err:
        load_predictor(gp_run, space, supernet_sha256="0" * 64)
    assert "--model" not in str(gp_err.value)  # the default rebuilds it
    trees = tmp_path / "trees"
    shutil.copytree(gp_run, trees)
    build_predictor(trees, n_subnets=24, seed=0, progress=False, model="trees")
    with pytest.raises(UserError, match="--model trees"):
        load_predictor(trees, space, supernet_sha256="0" * 64)


def test_unknown_model_is_refused_before_measuring(tiny_run_with_predictor, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run_with_predictor, run)
    (run / "predictor_samples.json").unlink()
    with pytest.raises(UserError, match="unknown predictor model"):
        build_predictor(run, n_subnets=12, progress=False, model="forest")
    assert not (run / "predictor_samples.json").exists()


def test_shipped_predictor_is_what_fit_gp_produces():
    """The shipped predictor is evolve.fit_gp's on the shipped samples (no hand edits): the documented
    seed-0 split, standardisation from the training part, weights that are the GP's solution with the
    stored kernel, and stored hyperparameters where the log marginal likelihood is stationary (what
    scikit-learn's optimiser returns); at_picks measured on these weights."""
    import torch
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    from evolve._heldout import error_report, heldout_split
    from hwofa.common import SHIPPED_RUN
    from supernet import load_supernet

    meta = json.loads((SHIPPED_RUN / "accuracy_predictor.json").read_text())
    samples = json.loads((SHIPPED_RUN / "predictor_samples.json").read_text())
    net, sup = load_supernet(SHIPPED_RUN)
    assert meta["model"] == "gaussian-process-ard" and meta["samples"] == samples["samples"]
    assert meta["supernet_sha256"] == samples["supernet_sha256"] == sup.weights_sha256
    archs = [ArchSpec.from_dict(s["arch"]) for s in samples["samples"]]
    y = np.array([s["val_top1"] for s in samples["samples"]])
    train, test = heldout_split(len(archs), torch.Generator().manual_seed(meta["seed"]))
    assert meta["heldout_indices"] == test.tolist() and (meta["n_train"], meta["n_heldout"]) == (len(train), len(test))
    shipped = load_predictor(SHIPPED_RUN, net.space, sup.weights_sha256)
    a, s = shipped.arrays, shipped.scalars
    x = features(net.space, archs, "slots").astype(np.float64)
    sd = x[train].std(0)
    np.testing.assert_allclose(a["x_mean"], x[train].mean(0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(a["x_scale"], np.where(sd > 0, sd, 1.0), rtol=0, atol=1e-12)
    z = (x[train] - a["x_mean"]) / a["x_scale"]
    np.testing.assert_allclose(a["x_train"], z, rtol=0, atol=1e-12)
    kernel = ConstantKernel(s["constant"], (1e-5, 1e5)) * Matern(a["length_scale"], (1e-1, 1e4), nu=2.5) \
        + WhiteKernel(meta["gp"]["noise"])
    gp = GaussianProcessRegressor(kernel, normalize_y=True, optimizer=None).fit(z, y[train])
    np.testing.assert_allclose(a["alpha"], gp.alpha_, rtol=0, atol=1e-8)
    assert (s["y_mean"], s["y_std"]) == pytest.approx((y[train].mean(), y[train].std()), abs=1e-12)
    _, grad = gp.log_marginal_likelihood(gp.kernel_.theta, eval_gradient=True)
    assert np.abs(grad).max() < 0.05, "stored hyperparameters are not where the fit stopped"
    reported = error_report(shipped.predict([archs[i] for i in test]), y[test], len(train), test)
    assert {k: meta[k] for k in ("rmse", "mae", "bias", "kendall_tau", "spearman")} == pytest.approx(
        {k: reported[k] for k in ("rmse", "mae", "bias", "kendall_tau", "spearman")}, rel=1e-9)
    assert meta["noise"] == meta["gp"]["noise"]
    np.testing.assert_allclose(shipped.predict(archs)[test], [meta["samples"][i]["val_top1"] for i in test],
                               rtol=0, atol=0.012)  # held-out errors are within 1.2 points (RMSE 0.18)
    assert shipped.report_summary()["at_picks"]["predictor_weights_sha256"] == meta["weights_sha256"]
