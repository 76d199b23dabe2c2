"""The external-command target (profiler/backends/command.py) with a fake device script, and once
for real with OpenVINO's benchmark_app."""

from __future__ import annotations

import json
import random
import re
import shlex
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from hwofa.common import UserError
from profiler import get_target, load_profile, to_onnx
from profiler.backends._command import resolve
from profiler.profiles import PROFILE_DIR

FAKE_DEVICE = r'''
import json, os, sys, time
args = sys.argv[1:]
opts = dict(zip(args[::2], args[1::2]))
with open(opts["--log"], "a") as f:
    f.write(json.dumps(args) + "\n")
calls = [json.loads(ln) for ln in open(opts["--log"])]
fail_after = opts.get("--fail-after-file")
if fail_after and os.path.exists(fail_after) and len(calls) > int(open(fail_after).read()):
    print("opening the device...", file=sys.stderr)
    print("error: the board stopped answering", file=sys.stderr)
    sys.exit(3)
mode = opts.get("--mode", "ok")
if mode == "fail":
    print("error: the board is busy", file=sys.stderr)
    sys.exit(3)
if mode == "sleep":
    time.sleep(30)
if mode == "zero":
    print("median: 0.000 us")
    sys.exit(0)
model = opts["--model"]
if mode == "silent" or not os.path.isfile(model):
    print("finished, no figures today")
    sys.exit(0)
if "--device-file" in opts:
    print("device:", open(opts["--device-file"]).read().strip())
visit = sum(1 for c in calls if dict(zip(c[::2], c[1::2])).get("--model") == model) - 1
base_us = 50 + os.path.getsize(model) / 10
print("median: %.3f us" % (base_us * (1.0, 1.2, 1.1)[visit % 3]))
print("p90: %.3f us" % (base_us * 2))
'''


@pytest.fixture()
def fake(tmp_path: Path) -> dict[str, Path]:
    script = tmp_path / "fake_device.py"
    script.write_text(FAKE_DEVICE)
    return {"script": script, "log": tmp_path / "calls.jsonl", "dir": tmp_path}


def _profile(tmp_path: Path, fake: dict[str, Path], trust: bool = True, extra_args: tuple[str, ...] = (),
             **options) -> object:
    command = ["{python}", str(fake["script"]), "--log", str(fake["log"]), "--model", "{model}", *extra_args]
    data = {"backend": "command", "threads": 2, "batch_size": 4,
            "options": {"command": command, "latency_regex": r"median:\s*(?P<ms>[0-9.]+)\s*(?P<unit>us|ms)",
                        "timeout_s": 20, **options}}
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_profile(path, trust_command=trust)


def _calls(fake: dict[str, Path]) -> list[dict[str, str]]:
    if not fake["log"].exists():
        return []
    return [dict(zip(c[::2], c[1::2], strict=True)) for c in map(json.loads, fake["log"].read_text().splitlines())]


def _tiny(channels: int) -> bytes:
    torch.manual_seed(0)
    return to_onnx(torch.nn.Conv2d(channels, channels, 3, padding=1), (1, channels, 8, 8))


def test_placeholders_and_a_hostile_model_path_reach_the_command_untouched(tmp_path, fake, monkeypatch):
    hostile = tmp_path / "my models; $(touch PWNED) `touch PWNED2` 'q' * & |"
    hostile.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(hostile))
    monkeypatch.chdir(tmp_path)
    prof = _profile(tmp_path, fake, extra_args=("--threads", "{threads}", "--batch", "{batch}", "--precision",
                                                "{precision}", "--tag", "{{literal}} {threads}x"), invocations=1)
    t = get_target(prof).cost(_tiny(4))
    (call,) = _calls(fake)
    assert call["--threads"] == "2" and call["--batch"] == "4" and call["--precision"] == "fp32"
    assert call["--tag"] == "{literal} 2x"  # braces escaped, no word splitting
    assert call["--model"].startswith(str(hostile) + "/") and call["--model"].endswith(".onnx")
    assert not list(tmp_path.rglob("PWNED*"))  # nothing went through a shell
    size = len(_tiny(4))
    assert t.p50_ms == pytest.approx((50 + size / 10) / 1000, rel=1e-3)  # "us" read through the unit group
    assert t.n == 1 and t.converged  # one invocation cannot disagree with itself


def test_invocations_interleave_and_summarise(tmp_path, fake):
    prof = _profile(tmp_path, fake, invocations=3, p90_regex=r"p90:\s*(?P<ms>[0-9.]+)\s*(?P<unit>us)")
    models = {f"m{c}": (lambda c=c: _tiny(c)) for c in (1, 2, 3, 4, 5)}
    done = []
    res = get_target(prof).cost_many(models, random.Random(1), on_done=lambda k, t, r: done.append((k, r)),
                                     progress=False)
    calls = [Path(c["--model"]).name for c in _calls(fake)]
    passes = [calls[i:i + 5] for i in range(0, 15, 5)]
    assert all(len(set(p)) == 5 for p in passes)  # every pass runs each model once ...
    assert len({tuple(p) for p in passes}) > 1  # ... in a fresh random order
    assert sorted(k for k, _ in done) == sorted(models) and all(r == [] for _, r in done)
    for key, t in res.items():
        base = (50 + len(models[key]()) / 10) / 1000
        assert t.n == 3 and t.p50_ms == pytest.approx(1.1 * base, rel=1e-3)  # median of 1.0, 1.2, 1.1
        assert t.p90_ms == pytest.approx(2 * base, rel=1e-3)  # the reported p90
        assert t.spread == pytest.approx(0.2, rel=1e-3) and not t.converged  # 20 % > timing.agree


def test_a_passed_deadline_ends_after_one_pass_unconverged(tmp_path, fake):
    prof = _profile(tmp_path, fake, invocations=3)
    models = {f"m{c}": (lambda c=c: _tiny(c)) for c in (1, 2)}
    res = get_target(prof).cost_many(models, random.Random(0), progress=False, deadline=time.monotonic() - 1)
    assert len(_calls(fake)) == 2 and all(t.n == 1 and not t.converged for t in res.values())


@pytest.mark.parametrize("mode,options,needle", [
    ("fail", {}, r"exited with status 3: .*fake_device.py.*the board is busy"),
    ("sleep", {"timeout_s": 0.5}, r"did not finish within 0.5 s \(options.timeout_s\)"),
    ("silent", {}, r"printed no latency matching options.latency_regex.*finished, no figures today"),
    ("zero", {}, r"reported a latency of 0: .*print it with more resolution"),
])
def test_failures_are_user_errors_naming_command_and_profile(tmp_path, fake, mode, options, needle):
    prof = _profile(tmp_path, fake, extra_args=("--mode", mode), **options)
    with pytest.raises(UserError, match=needle) as err:
        get_target(prof).cost(_tiny(2))
    assert f"device 'board' (profile {tmp_path / 'board.yaml'})" in str(err.value)


def test_missing_program_is_refused_before_running(tmp_path, fake):
    prof = _profile(tmp_path, fake)
    prof = replace(prof, options={**prof.options, "command": ["no-such-board-tool", "{model}"]})
    with pytest.raises(UserError, match=r"'no-such-board-tool', was not found \(looked in .* and on PATH\)"):
        get_target(prof)


@pytest.mark.parametrize("options,needle", [
    ({"command": "benchmark_app -m {model}"}, r"is a string .*write it as a YAML list.*\['benchmark_app', '-m'"),
    ({"command": ["prog", "{modle}"]}, r"unknown placeholder \{modle\}"),
    ({"command": ["prog", "-m", "x.onnx"]}, r"never names the model file"),
    ({"latency_regex": r"median: ([0-9.]+)"}, r"needs a named group \(\?P<ms>"),
    ({"invocations": 0}, r"invocations must be an integer >= 1"),
    ({"colour": "red"}, r"unknown option\(s\) \['colour'\]"),
])
def test_bad_options_are_refused(tmp_path, fake, options, needle):
    prof = _profile(tmp_path, fake)
    prof = replace(prof, options={**prof.options, **options})
    with pytest.raises(UserError, match=needle):
        get_target(prof)


def test_untrusted_profile_is_refused_and_trusted_accepted(tmp_path, fake):
    prof = _profile(tmp_path, fake, trust=False)
    assert not prof.trusted
    with pytest.raises(UserError, match=r"runs an external command, `.*fake_device.py --log .*`.*--trust-device-comm"):
        get_target(prof)
    target = get_target(prof, require=False)  # a caller that skips the check still cannot run it
    with pytest.raises(UserError, match="--trust-device-command"):
        target.cost(_tiny(2))
    with pytest.raises(UserError, match="--trust-device-command"):
        target.version()
    assert not _calls(fake)
    trusted = load_profile(tmp_path / "board.yaml", trust_command=True)
    assert trusted.trusted and trusted.digest() == prof.digest() and "trusted" not in trusted.to_dict()
    assert get_target(trusted).cost(_tiny(2)).p50_ms > 0


def test_a_profile_cannot_trust_itself(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("backend: command\ntrusted: true\noptions: {command: [sh, -c, 'rm -rf ~'], latency_regex: x}\n")
    with pytest.raises(UserError, match=r"unknown key\(s\) \['trusted'\]"):
        load_profile(path)


def test_shipped_profiles_are_trusted_copies_are_not(tmp_path):
    assert load_profile("cpu-benchmark-app").trusted
    assert load_profile(PROFILE_DIR / "cpu-benchmark-app.yaml").trusted
    copy = tmp_path / "cpu-benchmark-app.yaml"
    copy.write_text((PROFILE_DIR / "cpu-benchmark-app.yaml").read_text())
    assert not load_profile(copy).trusted


def test_cli_refuses_an_untrusted_command_and_names_the_flag(tmp_path, fake, capsys):
    from hwofa.cli import build_parser, main

    _profile(tmp_path, fake, trust=False)
    code = main(["profile", "--device", str(tmp_path / "board.yaml"), "--lut", str(tmp_path / "lut.json")])
    err = capsys.readouterr().err
    assert code == 2 and "--trust-device-command" in err and "fake_device.py" in err and "Traceback" not in err
    assert not _calls(fake)
    for argv in (["profile", "--device", "d"], ["search", "--device", "d", "--latency-ms", "1", "--out", "s.json"],
                 ["export", "--arch", "a.json", "--device", "d", "--out", "o"],
                 ["run", "--device", "d", "--latency-ms", "1", "--out", "o"]):
        assert build_parser().parse_args([*argv, "--trust-device-command"]).trust_device_command


def test_describe_shows_the_command_line(tmp_path, fake):
    prof = _profile(tmp_path, fake)
    line = get_target(prof, require=False).describe()
    assert shlex.split(line) == list(prof.options["command"])


def test_reported_device_is_a_dependency_and_must_not_change(tmp_path, fake):
    board = tmp_path / "board.txt"
    board.write_text("board-7")
    prof = _profile(tmp_path, fake, extra_args=("--device-file", str(board)),
                    device_regex=r"^device:\s*(?P<device>\S+)", version_command=["{python}", "--version"])
    target = get_target(prof)
    deps = target.depends_on()
    assert deps["device"] == "board-7" and deps["version"].startswith("Python 3")
    assert deps["executable"] == sys.executable
    board.write_text("board-8")
    with pytest.raises(UserError, match="reported the device 'board-8', but the build began on 'board-7'"):
        target.cost(_tiny(2))


def test_prepare_command_uploads_each_model_once_like_scp_to_a_board(tmp_path, fake):
    """A board over ssh, simulated: `prepare_command` copies the model to the board's folder once, the
    command runs it there by its shell-safe {model_name}; the device comes from `device_command`."""
    board = tmp_path / "board-fs"
    board.mkdir()
    upload = ["{python}", "-c", "import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2])", "{model}",
              f"{board}/{{model_name}}"]
    prof = _profile(tmp_path, fake, invocations=2, prepare_command=upload,
                    device_command=["{python}", "-c", "print('model: Jetson Orin Nano')"],
                    device_regex=r"model:\s*(?P<device>.+)$")
    prof = replace(prof, options={**prof.options, "command": [
        "{python}", str(fake["script"]), "--log", str(fake["log"]), "--model", f"{board}/{{model_name}}"]})
    target = get_target(prof)
    assert target.depends_on()["device"] == "Jetson Orin Nano"
    res = target.cost_many({"a b/c": lambda: _tiny(2), "$(x)": lambda: _tiny(3)}, random.Random(0), progress=False)
    names = sorted(p.name for p in board.iterdir())
    assert len(names) == 2 and all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names)
    assert sorted(Path(c["--model"]).name for c in _calls(fake)) == sorted(names * 2)
    assert set(res) == {"a b/c", "$(x)"} and all(t.n == 2 for t in res.values())


def test_build_keeps_the_partial_table_when_the_command_fails(tmp_path, fake):
    """A failing command stops the LUT build with a UserError; the entries finished before it are in
    the partial file, and the next build resumes them instead of measuring them again."""
    from conftest import TINY_SPACE

    from profiler import build_lut
    from profiler.build import partial_path
    from supernet import SearchSpace

    stop = tmp_path / "fail_after.txt"
    stop.write_text("12")
    prof = _profile(tmp_path, fake, extra_args=("--fail-after-file", str(stop)), invocations=1)
    prof = replace(prof, calibration={"subnets": 20, "seed": 0, "retry_s": 0})
    space, lut = SearchSpace.from_dict(TINY_SPACE), tmp_path / "lut.json"
    with pytest.raises(UserError, match="the board stopped answering"):
        build_lut(prof, space, lut, progress=False)
    partial = json.loads(partial_path(lut).read_text())
    assert len(partial["entries"]) == 12 and not lut.exists()
    assert partial["header"]["target"]["target"] == "command"
    first = {Path(c["--model"]).name[5:] for c in _calls(fake)[:12]}
    stop.unlink()
    n_before = len(_calls(fake))
    table = build_lut(prof, space, lut, progress=False)
    again = {Path(c["--model"]).name[5:] for c in _calls(fake)[n_before:]}
    assert not table.missing() and table.calibration is not None and lut.exists()
    assert not first & again  # nothing finished before the failure was measured twice


def _benchmark_app() -> tuple[bool, str]:
    try:
        resolve("benchmark_app", "cpu-benchmark-app")
    except UserError as exc:
        return False, str(exc)
    return True, ""


@pytest.mark.openvino
@pytest.mark.skipif(not _benchmark_app()[0], reason=f"benchmark_app absent: {_benchmark_app()[1]}")
def test_benchmark_app_for_real():
    prof = load_profile("cpu-benchmark-app")
    target = get_target(prof)
    assert target.version().startswith("openvino ")
    assert target.depends_on()["executable"].endswith("benchmark_app")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU())
    t = target.cost(to_onnx(net, (1, 8, 16, 16)))
    assert t.n == 3 and 0.001 < t.p50_ms < 20 and t.p90_ms >= t.p50_ms
