import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from hwofa.common import UserError
from supernet import load_recipe, load_supernet, recalibrate_bn
from supernet.train import Trainer
from tests.conftest import TINY_RECIPE


def test_tiny_training_writes_self_describing_checkpoint(tiny_run):
    meta = json.loads((tiny_run / "supernet.json").read_text())
    assert meta["format"] == "hwofa-supernet/1"
    assert set(meta["metrics"]["test_top1"]) == {"smallest", "middle", "largest"}
    assert len(meta["history"]) == 4  # one record per epoch: 1 + 1 + 2
    net, meta2 = load_supernet(tiny_run)  # rebuilt from the folder alone
    assert net.space == meta2.space and meta2.to_dict() == meta  # the typed record writes the file back as it is


def test_resume_after_interruption_gives_identical_weights(tmp_path, fmnist, tiny_recipe_path, monkeypatch):
    recipe = load_recipe(tiny_recipe_path)
    Trainer(recipe, fmnist, tmp_path / "straight").fit()

    calls = {"n": 0}
    original = Trainer._checkpoint

    def crash_after_two(self, *a, **k):
        original(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_checkpoint", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        Trainer(recipe, fmnist, tmp_path / "resumed").fit()
    monkeypatch.setattr(Trainer, "_checkpoint", original)
    progress = json.loads((tmp_path / "resumed" / "supernet.json").read_text())["progress"]
    assert {k: progress[k] for k in ("phase", "epoch")} == {"phase": 1, "epoch": 1}
    with pytest.raises(UserError, match="--resume"):
        Trainer(recipe, fmnist, tmp_path / "resumed").fit()
    Trainer(recipe, fmnist, tmp_path / "resumed").fit(resume=True)
    a = load_file(tmp_path / "straight" / "supernet.safetensors")
    b = load_file(tmp_path / "resumed" / "supernet.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_resume_refuses_other_recipe(tmp_path, fmnist, tiny_run, tiny_recipe_path):
    other = dict(TINY_RECIPE, seed=1)
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(other))
    with pytest.raises(UserError, match="recipe differs"):
        Trainer(load_recipe(path), fmnist, tiny_run).fit(resume=True)


@pytest.mark.parametrize("bad,needle", [({"phases": []}, "non-empty 'phases'"),
                                        ({**TINY_RECIPE, "lr": 1}, "unknown key"),
                                        ({**TINY_RECIPE, "phases": [{"name": "x", "epochs": 0, "lr": 1}]}, "epochs"),
                                        ({**TINY_RECIPE, "phases": [{"name": "x", "epochs": 1, "lr": 1,
                                                                     "kernel_sizes": [9]}]}, "not a subset"),
                                        ({**TINY_RECIPE, "phases": [{"name": "x", "epochs": 1, "lr": 1,
                                                                     "kd_teacher": "oracle"}]}, "choose one of"),
                                        ({**TINY_RECIPE, "phases": [{"name": "x", "epochs": 1, "lr": 1,
                                                                     "kd_ratio": 1, "kd_teacher": "inplace"}]},
                                         "subnets_per_step >= 2")])
def test_bad_recipes(tmp_path, bad, needle):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(UserError, match=needle):
        load_recipe(path)
    path.write_text("phases: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_recipe(path)


def test_recalibrate_bn_sets_exact_statistics():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1, bias=False), torch.nn.BatchNorm2d(2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    images = torch.randint(0, 256, (40, 1, 4, 4), dtype=torch.uint8)
    recalibrate_bn(model, images, 4, [0.0], [1.0], batch_size=40)
    x = images.float() / 255
    torch.testing.assert_close(model[1].running_mean, x.mean().repeat(2), rtol=1e-5, atol=1e-6)
    assert not model.training


def test_resume_may_change_only_phases_not_begun(tmp_path, fmnist, tiny_recipe_path):
    started = load_recipe(tiny_recipe_path).to_dict()
    shorter = dict(TINY_RECIPE, phases=[*TINY_RECIPE["phases"][:2], {**TINY_RECIPE["phases"][2], "epochs": 1}])
    path = tmp_path / "shorter.yaml"
    path.write_text(yaml.safe_dump(shorter))
    trainer = Trainer(load_recipe(path), fmnist, tmp_path / "run")
    trainer._check_resumable(started, phase=2, epoch=0)  # phase 'expand' not begun: may change
    with pytest.raises(UserError, match="already trained"):
        trainer._check_resumable(started, phase=2, epoch=1)  # begun: may not
    other_lr = dict(TINY_RECIPE, phases=[TINY_RECIPE["phases"][0], {**TINY_RECIPE["phases"][1], "lr": 0.5},
                                         TINY_RECIPE["phases"][2]])
    path.write_text(yaml.safe_dump(other_lr))
    with pytest.raises(UserError, match="recipe differs"):
        Trainer(load_recipe(path), fmnist, tmp_path / "run")._check_resumable(started, phase=2, epoch=0)


def test_other_dataset_is_refused(fmnist, tiny_run):
    from dataclasses import replace

    from supernet.bn import calibration_images

    _, meta = load_supernet(tiny_run)
    assert meta.dataset.sha256 == fmnist.fingerprint()
    assert len(calibration_images(meta, fmnist)) == TINY_RECIPE["bn_calib_images"]
    labels = fmnist.test_y.clone()
    labels[0] = (labels[0] + 1) % 10
    other = replace(fmnist, test_y=labels, _sha256=None)
    with pytest.raises(UserError, match="not the one this supernet was trained on"):
        calibration_images(meta, other)


def test_kill_between_weights_and_json_resumes_from_the_committed_copy(tmp_path, fmnist, tiny_recipe_path, tiny_run,
                                                                       monkeypatch):
    import supernet.train as train_mod
    from hwofa.common import sha256_file
    from supernet import save_tensors

    real, calls = train_mod.save_supernet, {"n": 0}

    def torn(run, net, meta):  # the second checkpoint's weights land, its supernet.json does not
        calls["n"] += 1
        if calls["n"] == 2:
            save_tensors(run / "supernet.safetensors", net.state_dict())
            raise KeyboardInterrupt
        real(run, net, meta)

    monkeypatch.setattr(train_mod, "save_supernet", torn)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        Trainer(load_recipe(tiny_recipe_path), fmnist, run).fit()
    monkeypatch.undo()
    meta = json.loads((run / "supernet.json").read_text())
    assert {k: meta["progress"][k] for k in ("phase", "epoch")} == {"phase": 0, "epoch": 1}
    assert sha256_file(run / "supernet.safetensors") != meta["weights_sha256"]  # newer than its JSON
    Trainer(load_recipe(tiny_recipe_path), fmnist, run).fit(resume=True)
    a, b = load_file(tiny_run / "supernet.safetensors"), load_file(run / "supernet.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    assert len(list((run / "train_state").glob("optimizer.*.safetensors"))) == 1  # older states pruned


def test_split_seed_fixes_the_data_while_seed_varies_the_rest(fmnist, tmp_path):
    from supernet.recipe import Recipe

    def trainer(**keys):
        return Trainer(Recipe.from_dict({**TINY_RECIPE, **keys}), fmnist, tmp_path / "unused")

    a, b, c = trainer(seed=0), trainer(seed=1, split_seed=0), trainer(seed=1)
    assert torch.equal(a.train_idx, b.train_idx) and torch.equal(a.val_idx, b.val_idx)
    assert not torch.equal(a.train_idx, c.train_idx)  # without split_seed the data follow the seed
    assert not torch.equal(a.net.stem[0].weight, b.net.stem[0].weight)  # initialisation follows the seed
    assert b.meta({"phase": 0, "epoch": 0})["dataset"]["split_seed"] == 0


def test_ablation_recipes_have_equal_epochs_and_train_one_subnet_alone():
    import importlib.util
    import random

    from supernet.recipe import load_recipe
    from supernet.train import phase_archs

    spec = importlib.util.spec_from_file_location("ps_ablation", "benchmarks/ps_ablation.py")
    ablation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablation)
    method_recipe, plan = ablation.method_recipe, ablation.plan
    ps = load_recipe(ablation.PS_RECIPE)
    recipes = {m: method_recipe(ps, m, 1, 8, 1024) for m, _ in plan([0, 1])}
    assert {sum(p.epochs for p in r.phases) for r in recipes.values()} == {8}
    assert [p.name for p in recipes["ps"].phases] == [p.name for p in ps.phases]
    assert all(r.split_seed == ps.seed and r.seed == 1 and r.train_limit == 1024 for r in recipes.values())
    space = ps.search_space()
    rng = random.Random(0)
    for which, arch in (("smallest", space.smallest()), ("largest", space.largest())):
        phase = recipes[f"scratch-{which}"].phases[0]
        assert {phase_archs(space, phase, rng)[0] for _ in range(20)} == {arch}
    nops = recipes["nops"].phases[0]
    assert nops.subnets_per_step == 3 and nops.kd_ratio == 0 and nops.kernel_sizes is None


def test_inplace_distillation_teaches_with_the_largest_subnets_detached_logits(tmp_path, fmnist, monkeypatch):
    """kd_teacher: inplace (BigNAS): the step's first subnet (the largest) learns from the labels only and its
    detached logits on the same images teach the others; no frozen teacher is loaded or saved."""
    import random

    import supernet.train as train_mod

    recipe = load_recipe_from({**TINY_RECIPE, "phases": [
        {"name": "all", "epochs": 1, "lr": 1e-3, "subnets_per_step": 3, "kd_ratio": 1.0, "kd_teacher": "inplace"}]},
        tmp_path)
    trainer = Trainer(recipe, fmnist, tmp_path / "run")
    phase = recipe.phases[0]
    archs = train_mod.phase_archs(trainer.space, phase, random.Random(0))
    assert archs[0] == trainer.space.largest()
    images, labels = fmnist.train_x[:16], fmnist.train_y[:16]
    taught: list[torch.Tensor] = []
    real = train_mod.distill_loss
    monkeypatch.setattr(train_mod, "distill_loss", lambda lg, t, temp: taught.append(t) or real(lg, t, temp))
    trainer._micro_step(phase, archs, images, labels)
    assert len(taught) == 2 and all(not t.requires_grad for t in taught)
    trainer.net.set_arch(archs[0])
    with torch.no_grad():
        x = train_mod.preprocess(images, archs[0].resolution, trainer.mean, trainer.std)
        before = trainer.net(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(taught[0], before)  # the largest's logits (weights not stepped yet)
    assert trainer.teacher is None
    trainer.fit()
    assert not (tmp_path / "run" / "train_state" / "teacher.safetensors").exists()


def load_recipe_from(data: dict, tmp_path) -> object:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_recipe(path)
