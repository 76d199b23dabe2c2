"""supernet.json as a typed SupernetMeta: same file format, same refusals."""

import json

import pytest

from hwofa.common import SHIPPED_RUN, UserError, resolve_run, sha256_file
from supernet import DatasetInfo, SupernetMeta, load_supernet


def test_shipped_supernet_loads_and_writes_back_unchanged():
    assert resolve_run(None) == SHIPPED_RUN
    raw = json.loads((SHIPPED_RUN / "supernet.json").read_text())
    net, meta = load_supernet(resolve_run(None))
    assert meta.to_dict() == raw
    assert meta.weights_sha256 == raw["weights_sha256"] == sha256_file(SHIPPED_RUN / "supernet.safetensors")
    assert meta.space == net.space and meta.bn_calib_images == raw["recipe"]["bn_calib_images"]
    ds = meta.dataset
    assert (ds.name, list(ds.mean), ds.val_size, ds.sha256) == (raw["dataset"]["name"], raw["dataset"]["mean"],
                                                              raw["dataset"]["val_size"], raw["dataset"]["sha256"])
    assert ds.extra["image_size"] == raw["dataset"]["image_size"]


def test_shipped_supernet_was_trained_by_the_default_recipe():
    """`hwofa train` without --recipe reproduces the shipped supernet's recipe (supernet/recipes/fashion_mnist.yaml)."""
    from supernet.recipe import load_recipe

    raw = json.loads((SHIPPED_RUN / "supernet.json").read_text())
    assert raw["recipe"] == load_recipe(None).to_dict()


def test_optional_dataset_fields_stay_absent():
    d = {"name": "x", "mean": [0.5], "std": [0.25], "val_size": 10, "split_seed": 0}
    info = DatasetInfo.from_dict(d, "supernet.json")
    assert info.sha256 is None and info.classes is None and info.to_dict() == d


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda m: m.update(format="other/1"), "is not a hwofa supernet description"),
    (lambda m: m.pop("weights_sha256"), "lacks the field 'weights_sha256'"),
    (lambda m: m["dataset"].pop("split_seed"), "lacks the field 'split_seed'"),
    (lambda m: m["dataset"].update(mean=0.5), "field 'mean' should be list"),
    (lambda m: m["recipe"].update(bn_calib_images="many"), "field 'bn_calib_images' should be int"),
])
def test_bad_description_is_refused(tmp_path, edit, needle):
    run = tmp_path  # the description is refused before any weights are read
    meta = json.loads((SHIPPED_RUN / "supernet.json").read_text())
    edit(meta)
    (run / "supernet.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=needle):
        load_supernet(run)
    with pytest.raises(UserError, match=needle):
        SupernetMeta.from_dict(meta, run / "supernet.json")
