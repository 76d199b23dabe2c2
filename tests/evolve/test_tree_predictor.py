"""The tree predictor: numpy evaluation equal to scikit-learn's, fit/save/load round trip, the old MLP
format still read, bad files refused with a message naming the rebuild command."""

import json
import random
import shutil
import sys

import numpy as np
import pytest
import torch

from evolve import (
    AccuracyPredictor,
    TreePredictor,
    build_predictor,
    encode,
    features,
    fit,
    fit_trees,
    load_predictor,
    sample_archs,
)
from evolve._fast import AccuracyCache, GenomeLayout
from evolve._trees import TreeEnsemble
from hwofa.common import UserError
from supernet import SearchSpace, save_tensors
from tests.conftest import TINY_SPACE

pytest.importorskip("sklearn")


def synthetic(space, n=300, seed=0):
    """A signal with interactions (depth x kernel, resolution x expand) the trees can find."""
    archs = sample_archs(space, n, seed)
    rng = np.random.default_rng(seed)
    y = np.array([0.85 + 0.004 * a.resolution / 4 + sum(0.002 * len(s) * (s[-1].kernel_size > 3) for s in a.stages)
                  + 0.0005 * a.resolution / 28 * sum(b.expand_ratio for s in a.stages for b in s) for a in archs])
    return archs, y + rng.normal(0, 0.001, n)


def test_numpy_trees_equal_sklearn():
    from sklearn.ensemble import GradientBoostingRegressor

    space = SearchSpace()
    archs, y = synthetic(space)
    x = features(space, archs, "slots").astype(np.float64)
    model = GradientBoostingRegressor(n_estimators=50, max_depth=3, random_state=0).fit(x, y)
    trees = TreeEnsemble.from_sklearn(model)
    np.testing.assert_allclose(trees.predict(x), model.predict(x), rtol=0, atol=1e-12)
    again = TreeEnsemble.from_tensors(trees.to_tensors(), trees.base, trees.n_trees, trees.depth)
    np.testing.assert_array_equal(again.predict(x), trees.predict(x))


def test_fit_learns_interactions_with_an_honest_interval():
    space = SearchSpace()
    archs, y = synthetic(space, 300)
    model = fit_trees(space, archs, y, seed=0)  # the shipped settings (HYPER)
    rep = model.report_summary()
    assert rep["model"] == "gradient-boosted-trees" and rep["n_heldout"] == 60 and rep["n_train"] == 240
    assert rep["kendall_tau"] > 0.7 and rep["rmse"] < 0.5 * np.std(y)
    iv = rep["interval"]
    assert iv["low"] < 0 < iv["high"] and iv["coverage"] == 0.9 and 0.75 <= iv["heldout_coverage"] <= 1
    x = features(space, archs[:20], "slots")
    np.testing.assert_array_equal(model.predict(archs[:20]), model.predict_features(x))


def test_search_cache_feeds_the_trees_their_features():
    space = SearchSpace()
    archs, y = synthetic(space, 200)
    model = fit_trees(space, archs, y, seed=1, n_estimators=20)
    layout = GenomeLayout(space)
    rng = random.Random(0)
    genomes = [encode(space, space.sample(rng)) for _ in range(50)]
    got = AccuracyCache(layout, model)([layout.key(g) for g in genomes], genomes)
    np.testing.assert_allclose(got, model.predict([layout.arch(layout.key(g)) for g in genomes]), atol=1e-12)


@pytest.fixture(scope="module")
def tree_run(tiny_run_with_predictor, tmp_path_factory):
    """The tiny run with a tree predictor (the default is the GP); its measured subnets are reused."""
    run = tmp_path_factory.mktemp("tree_run") / "run"
    shutil.copytree(tiny_run_with_predictor, run)
    build_predictor(run, n_subnets=24, seed=0, progress=False, model="trees")
    return run


def test_build_save_load_round_trip(tree_run):
    run = tree_run
    meta = json.loads((run / "accuracy_predictor.json").read_text())
    assert meta["format"] == "hwofa-accuracy-predictor/2" and meta["feature_set"] == "slots"
    space = SearchSpace.from_dict(TINY_SPACE)
    loaded = load_predictor(run, space)
    assert isinstance(loaded, TreePredictor)
    from supernet import ArchSpec

    archs = [ArchSpec.from_dict(s["arch"]) for s in meta["samples"]]
    refit = fit_trees(space, archs, np.array([s["val_top1"] for s in meta["samples"]]), seed=meta["seed"])
    np.testing.assert_allclose(loaded.predict(archs), refit.predict(archs), rtol=0, atol=1e-12)
    assert loaded.report_summary() == json.loads(json.dumps(refit.report_summary()))


@pytest.fixture()
def run_copy(tree_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tree_run, run)
    return run


def test_old_mlp_format_still_loads(run_copy):
    space = SearchSpace.from_dict(TINY_SPACE)
    meta = json.loads((run_copy / "accuracy_predictor.json").read_text())
    archs = sample_archs(space, 20, 0)
    mlp = fit(space, archs, np.linspace(0.8, 0.9, 20), torch.Generator().manual_seed(0), epochs=5, hidden=(8,))
    digest = save_tensors(run_copy / "accuracy_predictor.safetensors", mlp.state_dict())
    old = {k: meta[k] for k in ("space", "space_hash", "supernet_sha256")}
    (run_copy / "accuracy_predictor.json").write_text(json.dumps(
        {**old, "format": "hwofa-accuracy-predictor/1", "weights_sha256": digest, "hidden": [8], "rmse": 0.01}))
    loaded = load_predictor(run_copy, space)
    assert isinstance(loaded, AccuracyPredictor) and loaded.report_summary()["rmse"] == 0.01
    np.testing.assert_allclose(loaded.predict(archs), mlp.predict(archs), atol=1e-6)


@pytest.mark.parametrize("change, needle", [
    (lambda m: {**m, "format": "hwofa-accuracy-predictor/9"}, "hwofa predictor --supernet"),
    (lambda m: {**m, "weights_sha256": "0" * 64}, "does not match the sha256"),
    (lambda m: {**m, "trees": {**m["trees"], "n_trees": m["trees"]["n_trees"] + 1}}, "do not fit its JSON"),
    (lambda m: {**m, "feature_set": "onehot"}, "rebuild the predictor"),
    (lambda m: {k: v for k, v in m.items() if k != "trees"}, "lacks the field 'trees'"),
])
def test_bad_predictor_files_are_user_errors(run_copy, change, needle):
    path = run_copy / "accuracy_predictor.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    with pytest.raises(UserError, match=needle):
        load_predictor(run_copy, SearchSpace.from_dict(TINY_SPACE))


def test_corrupt_tree_arrays_are_user_errors(run_copy):
    from safetensors.torch import load_file

    weights = run_copy / "accuracy_predictor.safetensors"
    tensors = load_file(str(weights))
    tensors["left"] = tensors["left"] + 10**6
    path = run_copy / "accuracy_predictor.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "weights_sha256": save_tensors(weights, tensors)}))
    with pytest.raises(UserError, match="do not fit its JSON"):
        load_predictor(run_copy, SearchSpace.from_dict(TINY_SPACE))


def test_fitting_without_sklearn_names_the_extra(monkeypatch, run_copy):
    monkeypatch.setitem(sys.modules, "sklearn.ensemble", None)
    space = SearchSpace.from_dict(TINY_SPACE)
    with pytest.raises(UserError, match=r"pip install 'hwofa\[bench\]'"):
        fit_trees(space, sample_archs(space, 20, 0), np.linspace(0.8, 0.9, 20))
    (run_copy / "predictor_samples.json").unlink()
    with pytest.raises(UserError, match=r"pip install 'hwofa\[bench\]'"):  # before measuring anything
        build_predictor(run_copy, n_subnets=12, progress=False, model="trees")
    assert not (run_copy / "predictor_samples.json").exists()


def test_at_picks_errors_kept_only_for_their_own_predictor(run_copy):
    path = run_copy / "accuracy_predictor.json"
    meta = json.loads(path.read_text())
    at_picks = {"coverage": 0.9, "low": -0.01, "high": 0.0, "predictor_weights_sha256": meta["weights_sha256"]}
    path.write_text(json.dumps({**meta, "at_picks": at_picks}))
    space = SearchSpace.from_dict(TINY_SPACE)
    assert load_predictor(run_copy, space).report_summary()["at_picks"] == at_picks
    path.write_text(json.dumps({**meta, "at_picks": {**at_picks, "predictor_weights_sha256": "0" * 64}}))
    assert "at_picks" not in load_predictor(run_copy, space).report_summary()

