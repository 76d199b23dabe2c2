import json

import numpy as np
import pytest
import torch

from evolve import fit, load_predictor, sample_archs
from evolve.measure import SAMPLES_FILE, measure_subnets
from hwofa.common import UserError
from supernet import SearchSpace
from tests.conftest import TINY_SPACE


def test_fit_learns_a_signal():
    space = SearchSpace()
    archs = sample_archs(space, 200, 0)
    y = np.array([0.8 + 0.01 * a.resolution / 28 + 0.002 * sum(b.expand_ratio for s in a.stages for b in s)
                  for a in archs])
    model = fit(space, archs, y, torch.Generator().manual_seed(0), epochs=300)
    rep = model.report_summary()
    assert rep["n_heldout"] == 40 and rep["kendall_tau"] > 0.5 and rep["rmse"] < np.std(y)


def test_sample_archs_distinct_with_extremes():
    space = SearchSpace.from_dict(TINY_SPACE)
    archs = sample_archs(space, 30, 0)
    assert len({a.key() for a in archs}) == 30 and archs[0] == space.largest() and archs[1] == space.smallest()
    assert archs == sample_archs(space, 30, 0)


def test_build_and_load_predictor(tiny_run_with_predictor):
    run = tiny_run_with_predictor
    meta = json.loads((run / "accuracy_predictor.json").read_text())
    assert len(meta["samples"]) == 24 and {"rmse", "kendall_tau", "n_heldout"} <= set(meta)
    assert meta["format"] == "hwofa-accuracy-predictor/3"  # the default model: the ARD Gaussian process
    assert all(0 <= s["val_top1"] <= 1 for s in meta["samples"])
    space = SearchSpace.from_dict(TINY_SPACE)
    pred = load_predictor(run, space)
    out = pred.predict([space.largest(), space.smallest()])
    assert out.shape == (2,) and np.all(np.isfinite(out))
    with pytest.raises(UserError, match="another supernet"):
        load_predictor(run, SearchSpace())
    with pytest.raises(UserError, match="another supernet"):
        load_predictor(run, space, supernet_sha256="0" * 64)
    assert load_predictor(run, space, meta["supernet_sha256"]).predict([space.largest()]) == pytest.approx(out[:1])


def test_measure_resumes_without_remeasuring(tiny_run, tmp_path, monkeypatch):
    import shutil

    import evolve.measure as measure

    tiny_run = shutil.copytree(tiny_run, tmp_path / "run")  # the session's run keeps its samples
    (tiny_run / SAMPLES_FILE).unlink(missing_ok=True)
    calls = []
    real = measure._onnx_top1

    def counting(*a, **k):
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(measure, "_onnx_top1", counting)
    with pytest.raises(KeyboardInterrupt):
        measure_subnets(tiny_run, 12, seed=3, progress=False)
    saved = json.loads((tiny_run / SAMPLES_FILE).read_text())["samples"]
    assert len(saved) == 5  # flushed every 5
    calls.clear()
    monkeypatch.setattr(measure, "_onnx_top1", lambda *a, **k: calls.append(1) or real(*a, **k))
    samples = measure_subnets(tiny_run, 12, seed=3, progress=False)
    assert len(samples) == 12 and len(calls) == 7


def test_measure_archs_scores_the_split_asked_for(tiny_run, fmnist, monkeypatch):
    import evolve.measure as measure
    from evolve.measure import measure_archs

    seen = []
    real = measure._onnx_correct
    monkeypatch.setattr(measure, "_onnx_correct", lambda m, x, y, *a: seen.append((x, y)) or real(m, x, y, *a))
    space = SearchSpace.from_dict(TINY_SPACE)
    arch = [space.smallest()]
    val = measure_archs(tiny_run, arch, progress=False, per_image=True)[0]
    test = measure_archs(tiny_run, arch, progress=False, per_image=True, split="test")[0]
    assert val.shape == (300,) and test.shape == (len(fmnist.test_y),)  # the recipe's val_size; all test images
    assert torch.equal(seen[1][0], fmnist.test_x) and np.array_equal(seen[1][1], fmnist.test_y.numpy())
    assert not np.array_equal(seen[0][1][:300], fmnist.test_y.numpy()[:300])  # validation: training images
    assert measure_archs(tiny_run, arch, progress=False, split="test")[0] == pytest.approx(test.mean())
    with pytest.raises(ValueError, match="'validation' or 'test'"):
        measure_archs(tiny_run, arch, progress=False, split="train")


def test_split_half_noise_recovers_the_sampling_noise_of_top1():
    from evolve._heldout import split_half_noise

    rng = np.random.default_rng(0)
    p = np.linspace(0.88, 0.92, 40)  # 40 subnets, each image right with its own probability
    correct = rng.random((40, 4000)) < p[:, None]
    diff_sd, tau = split_half_noise(correct, 20, np.random.default_rng(1))
    expected = 100 * np.sqrt(2 * np.mean(p * (1 - p)) / 2000)  # sd of the difference of two 2 000-image top-1s
    assert diff_sd == pytest.approx(expected, rel=0.2) and -1 <= tau <= 1
