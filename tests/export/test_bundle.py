"""The bundle folder is swapped in whole: a failed export never destroys a good bundle."""

import json

import pytest

from export import CheckFailed, check_out_folder, export_subnet
from export import _verify_cache as vcache
from export.bundle import StagedBundle, holds_passed_bundle
from hwofa.common import UserError
from supernet import load_supernet


@pytest.fixture(scope="module")
def arch(tiny_run):
    net, _ = load_supernet(tiny_run)
    return net.space.uniform(12, 3, 3, 1)


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _siblings(folder):
    return sorted(p.name for p in folder.parent.iterdir())


def test_latency_miss_never_replaces_a_passed_bundle(tiny_run, arch, tmp_path):
    out = tmp_path / "bundle"
    first = export_subnet(arch, "cpu-onnxruntime", out, supernet_run=tiny_run, budget_ms=1000.0)
    assert first.written and first.passed
    (out / "search.json").write_text("{}")  # a run's search.json belongs to that bundle
    before = _snapshot(out)
    missed = export_subnet(arch, "cpu-onnxruntime", out, supernet_run=tiny_run, budget_ms=1e-6)
    assert not missed.written and not missed.passed
    assert _snapshot(out) == before and _siblings(out) == ["bundle"]
    # no passed bundle there: the closest one is written, with passed: false, and replaces the folder whole
    json_path = out / "model.json"
    json_path.write_text(json_path.read_text().replace('"passed": true', '"passed": false'))
    again = export_subnet(arch, "cpu-onnxruntime", out, supernet_run=tiny_run, budget_ms=1e-6)
    assert again.written
    report = json.loads(json_path.read_text())
    assert report["passed"] is False and report["verification"]["cached"] is True
    assert not (out / "search.json").exists() and _siblings(out) == ["bundle"]
    failed = [c for c in report["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["latency_budget"] and failed[0]["fatal"] is False


def test_fatal_failure_leaves_out_untouched(tiny_run, arch, tmp_path, monkeypatch):
    out = tmp_path / "bundle"
    export_subnet(arch, "cpu-onnxruntime", out, supernet_run=tiny_run)
    before = _snapshot(out)
    import export.checks

    monkeypatch.setattr(export.checks, "PARITY_TOL", -1.0)  # every parity check fails now
    monkeypatch.setattr(vcache, "load", lambda key, inputs: None)  # and is not served from the cache
    with pytest.raises(CheckFailed, match="parity"):
        export_subnet(arch, "cpu-onnxruntime", out, supernet_run=tiny_run)
    assert _snapshot(out) == before and _siblings(out) == ["bundle"]


def test_verification_cache_hit_and_corrupt_entry(tiny_run, arch, tmp_path, caplog):
    first = export_subnet(arch, "cpu-onnxruntime", tmp_path / "a", supernet_run=tiny_run)
    key = first.report["verification"]["key"]
    entry = vcache.cache_root() / key
    assert entry.is_dir() and len(key) == 64
    hit = export_subnet(arch, "cpu-onnxruntime", tmp_path / "b", supernet_run=tiny_run)
    assert hit.report["verification"] == {"cached": True, "key": key}
    assert (tmp_path / "b" / "model.onnx").read_bytes() == (tmp_path / "a" / "model.onnx").read_bytes()
    for field in ("accuracy", "parity"):
        assert hit.report[field] == first.report[field] or first.report["verification"]["cached"]
    blob = bytearray((entry / "model.onnx").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (entry / "model.onnx").write_bytes(bytes(blob))  # corrupt: must be ignored and rebuilt
    rebuilt = export_subnet(arch, "cpu-onnxruntime", tmp_path / "c", supernet_run=tiny_run)
    assert rebuilt.report["verification"]["cached"] is False and "ignoring" in caplog.text
    assert (tmp_path / "c" / "model.onnx").read_bytes() == (entry / "model.onnx").read_bytes()
    (entry / "verify.json").write_text("{")
    assert vcache.load(key, vcache.key_inputs(*_key_args(tiny_run, arch))) is None


def _key_args(run, arch):
    _, meta = load_supernet(run)
    return meta, arch, meta.dataset.sha256


def test_out_folder_checks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(UserError, match="todo.txt"):
        check_out_folder(tmp_path / "notes")
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        check_out_folder(tmp_path / "f")
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_out_folder(tmp_path / "f" / "out")
    with pytest.raises(UserError, match="cannot be written"):
        check_out_folder("/proc/hwofa-out")
    with pytest.raises(UserError, match="current folder"):
        check_out_folder(".")
    assert check_out_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "notes"]  # the probes left nothing behind


def test_staged_bundle_is_discarded_and_stale_partials_removed(tmp_path):
    out = tmp_path / "out"
    stale = tmp_path / ".out.partial-999999999-abc"
    stale.mkdir()
    with StagedBundle(out) as staged:
        (staged.dir / "model.json").write_text('{"passed": true}')
        assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    with StagedBundle(out) as staged:
        (staged.dir / "model.json").write_text('{"passed": true}')
        assert staged.commit(passed=True)
    assert holds_passed_bundle(out) and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
