"""Bad input to every command (devices, space, train, predictor, search, export, run) is exit 2 with one
paragraph on stderr, no traceback, nothing written, and is refused before any slow work."""

import json
import time

import pytest

from hwofa.cli import main

ARCH_HINT = {"resolution": 12, "stages": [[{"kernel_size": 3, "expand_ratio": 3}], [{"kernel_size": 3,
                                                                                      "expand_ratio": 3}]]}


@pytest.fixture()
def files(tmp_path, tiny_run):
    """A workspace of bad inputs; the test checks nothing new appears in it."""
    f = {"dir": tmp_path / "adir", "file": tmp_path / "afile", "empty": tmp_path / "empty.json",
         "blank": tmp_path / "blank.json", "list": tmp_path / "list.json", "run": tiny_run}
    f["dir"].mkdir()
    f["file"].write_text("x")
    f["empty"].write_text("")
    f["blank"].write_text("  \n")
    f["list"].write_text("[1, 2]")
    f["other_search"] = tmp_path / "other.json"
    f["other_search"].write_text(json.dumps({"format": "optuna-study/2", "trials": []}))
    f["string_yaml"] = tmp_path / "dev.yaml"
    f["string_yaml"].write_text("just a string\n")
    f["notes"] = tmp_path / "notes"
    f["notes"].mkdir()
    (f["notes"] / "todo.txt").write_text("mine")
    yield f
    names = {"adir", "afile", "empty.json", "blank.json", "list.json", "other.json", "dev.yaml", "notes",
             "arch.json"}
    assert {p.name for p in tmp_path.iterdir()} <= names  # nothing written, no probe left behind
    assert [p.name for p in f["notes"].iterdir()] == ["todo.txt"]


def user_error(capsys, argv, needle):
    t0 = time.time()
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    assert code == 2, err
    assert needle in err, err
    assert "Traceback" not in err and err.count("\n") <= 1, err
    assert time.time() - t0 < 8, "refused only after slow work"


def arch_file(tmp_path, obj):
    p = tmp_path / "arch.json"
    p.write_text(json.dumps(obj))
    return p


def test_devices_rejects_extra_arguments():
    with pytest.raises(SystemExit) as exc:
        main(["devices", "--all"])
    assert exc.value.code == 2


@pytest.mark.parametrize("which,needle", [
    ("file", "is a file; give the run folder"), ("dir", "holds no supernet.json"), ("missing", "does not exist"),
])
def test_space_bad_supernet(capsys, files, tmp_path, which, needle):
    user_error(capsys, ["space", "--supernet", files.get(which, tmp_path / "missing")], needle)


def test_space_repeated_supernet(capsys, files):
    user_error(capsys, ["space", "--supernet", files["run"], "--supernet", files["dir"]], "--supernet is given twice")


@pytest.mark.parametrize("extra,needle", [
    (["--out", "/proc/hwofa-run"], "cannot be written"),
    (["--out", "{file}/run"], "is a file, not a folder"),
    (["--out", "{file}"], "is a file; a supernet run needs a folder"),
    (["--out", "{tmp}/r", "--recipe", "{dir}"], "is a directory"),
    (["--out", "{tmp}/r", "--recipe", "{empty}"], "is empty"),
    (["--out", "{tmp}/r", "--data-dir", "{tmp}/nope"], "--data-dir"),
    (["--out", "{tmp}/r", "--out", "{tmp}/s"], "--out is given twice"),
])
def test_train_bad_input(capsys, files, tmp_path, extra, needle):
    subst = {"file": files["file"], "dir": files["dir"], "empty": files["empty"], "tmp": tmp_path}
    user_error(capsys, ["train", "--dataset", "fashion-mnist", *[a.format(**subst) for a in extra]], needle)


@pytest.mark.parametrize("extra,needle", [
    (["--supernet", "{file}"], "is a file"),
    (["--supernet", "{dir}"], "holds no supernet.json"),
    (["--supernet", "{run}", "--subnets", "0"], "--subnets 0 is too few"),
    (["--supernet", "{run}", "--data-dir", "{file}"], "--data-dir"),
    (["--supernet", "{run}", "--seed", "1", "--seed", "2"], "--seed is given twice"),
])
def test_predictor_bad_input(capsys, files, extra, needle):
    user_error(capsys, ["predictor", *[a.format(**files) for a in extra]], needle)


@pytest.mark.parametrize("extra,needle", [
    (["--latency-ms", "1", "--latency-ms", "2", "--out", "{tmp}/s.json"], "--device D=MS"),
    (["--latency-ms", "1", "--out", "/proc/hwofa.json"], "cannot be written"),
    (["--latency-ms", "1", "--out", "{file}/s.json"], "is a file, not a folder"),
    (["--latency-ms", "1", "--out", "{dir}"], "is a folder"),
])
def test_search_bad_input(capsys, files, tmp_path, extra, needle):
    argv = ["search", "--device", "cpu-onnxruntime", "--supernet", files["run"]]
    user_error(capsys, argv + [a.format(tmp=tmp_path, **files) for a in extra], needle)


def test_export_takes_no_per_device_budget(capsys, files, tmp_path):
    user_error(capsys, ["export", "--arch", arch_file(tmp_path, ARCH_HINT), "--device", "cpu-onnxruntime=0.2",
                        "--out", tmp_path / "o", "--supernet", files["run"]], "`hwofa export` takes no budget")


@pytest.mark.parametrize("arch,needle", [
    ({"resolution": 13, "stages": ARCH_HINT["stages"]}, "resolution 13 is not in the space's resolutions [12, 16]"),
    ({"resolution": 12, "stages": [[{"kernel_size": 4, "expand_ratio": 3}]]}, "it has 1 stages but the space has 2"),
    ({"resolution": 12, "stages": [[{"kernel_size": 4, "expand_ratio": 3}]] * 2}, "kernel_size 4 (allowed [3, 5])"),
    ({"resolution": 12, "stages": [[{"kernel_size": 3, "expand_ratio": 5}]] * 2}, "expand_ratio 5 (allowed [3, 6])"),
    ({"resolution": 12, "stages": [[], ARCH_HINT["stages"][1]]}, "stage 0 has depth 0 (allowed depths [1, 2])"),
    ({"resolution": 12, "stages": [[{"kernel_size": 3, "expand_ratio": 3}] * 3] * 2}, "stage 1 has depth 3"),
    ({"resolution": 28, "stages": [[{"kernel_size": 4, "expand_ratio": 4}]]}, "resolution 28 is not in the space"),
    ({"resolution": "12", "stages": ARCH_HINT["stages"]}, "'resolution' is the string \"12\", not an integer"),
    ({"stages": ARCH_HINT["stages"]}, "lacks the field 'resolution'"),
    ({"resolution": 12, "stages": [[{"kernel_size": 3}]] * 2}, "stage 0 block 0 lacks 'expand_ratio'"),
    ({"resolution": 12, "stages": [[{"kernel_size": 3, "expand_ratio": 3, "se": 1}]] * 2}, "unknown field 'se'"),
    ({"resolution": 12, "stages": {"0": []}}, "'stages' is an object, not a list"),
    ([ARCH_HINT], "holds a list, not an ArchSpec"),
    ("12", "holds a string"),
])
def test_export_arch_outside_space_or_malformed(capsys, files, tmp_path, arch, needle):
    user_error(capsys, ["export", "--arch", arch_file(tmp_path, arch), "--device", "cpu-onnxruntime",
                        "--out", tmp_path / "o", "--supernet", files["run"]], needle)


@pytest.mark.parametrize("src,needle", [
    (["--arch", "{dir}"], "is a directory"),
    (["--arch", "{empty}"], "is empty"),
    (["--arch", "{blank}"], "only whitespace"),
    (["--arch", "{list}"], "holds a list"),
    (["--search", "{dir}"], "is a directory"),
    (["--search", "{list}"], "holds a list, not a hwofa search result"),
    (["--search", "{other_search}"], "its format is \"optuna-study/2\""),
    (["--search", "{empty}", "--search", "{list}"], "--search is given twice"),
])
def test_export_bad_files(capsys, files, tmp_path, src, needle):
    user_error(capsys, ["export", *[a.format(**files) for a in src], "--device", "cpu-onnxruntime",
                        "--out", tmp_path / "o", "--supernet", files["run"]], needle)


@pytest.mark.parametrize("out,needle", [
    ("/proc/hwofa-out", "cannot be written"), ("{file}/o", "is a file, not a folder"), ("{file}", "is a file"),
    ("{notes}", "todo.txt"),
])
def test_export_bad_out(capsys, files, tmp_path, out, needle):
    user_error(capsys, ["export", "--arch", arch_file(tmp_path, ARCH_HINT), "--device", "cpu-onnxruntime",
                        "--out", out.format(**files), "--supernet", files["run"]], needle)


def test_export_device_twice_and_device_yaml_that_is_a_string(capsys, files, tmp_path):
    arch = arch_file(tmp_path, ARCH_HINT)
    user_error(capsys, ["export", "--arch", arch, "--device", "cpu-onnxruntime", "--device", "cpu-openvino",
                        "--out", tmp_path / "o", "--supernet", files["run"]], "--device is given twice")
    user_error(capsys, ["export", "--arch", arch, "--device", files["string_yaml"], "--out", tmp_path / "o",
                        "--supernet", files["run"]], "must be a YAML mapping")


@pytest.mark.parametrize("extra,needle", [
    (["--latency-ms", "1", "--out", "/proc/hwofa-out"], "cannot be written"),
    (["--latency-ms", "1", "--out", "{file}/o"], "is a file, not a folder"),
    (["--latency-ms", "1", "--out", "{notes}"], "todo.txt"),
    (["--latency-ms", "0.2", "--latency-ms", "0.3", "--out", "{tmp}/o"], "its own budget with --device D=MS"),
    (["--latency-ms", "1", "--device", "cpu-onnxruntime", "--out", "{tmp}/o"], "is named twice"),
    (["--out", "{tmp}/o"], "device 'cpu-onnxruntime' has no latency budget"),
    (["--latency-ms", "1", "--out", "{tmp}/o", "--supernet", "{dir}"], "holds no supernet.json"),
])
def test_run_bad_input(capsys, files, tmp_path, extra, needle):
    user_error(capsys, ["run", "--device", "cpu-onnxruntime", *[a.format(tmp=tmp_path, **files) for a in extra]],
               needle)


@pytest.mark.parametrize("case", ["repeat", "lut_dir", "device_dir", "device_string", "unknown"])
def test_profile_bad_input(capsys, files, case):
    run = files["run"]
    (files["dir"] / "d.yaml").mkdir(exist_ok=True)
    argv, needle = {
        "repeat": (["profile", "--device", "cpu-onnxruntime", "--device", "cpu-openvino", "--supernet", run],
                   "given twice"),
        "lut_dir": (["profile", "--device", "cpu-onnxruntime", "--supernet", run, "--lut", files["dir"]],
                    "is a folder"),
        "device_dir": (["profile", "--device", files["dir"] / "d.yaml", "--supernet", run], "is a folder"),
        "device_string": (["profile", "--device", files["string_yaml"], "--supernet", run], "YAML mapping"),
        "unknown": (["profile", "--device", "cpu-onnxrt", "--supernet", run], "Did you mean"),
    }[case]
    user_error(capsys, argv, needle)
