"""A killed, stale, truncated or degraded table never loses finished work (issue: faults).

Each test runs the real `hwofa profile` in a subprocess on the tiny space and SIGKILLs it
mid-build, then reruns it and checks that no finished entry or subnet was measured twice
(its recorded rounds are unchanged) and that the cached table was never replaced by a
partial one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FAST = """backend: onnxruntime
timing: {warmup_runs: 10, warmup_s: 0.01, round_runs: 5, round_s: 0.005, rounds: 3, max_rounds: 6}
calibration: {subnets: 20, seed: 0, retry_s: 0}
"""


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dev") / "tinycpu.yaml"
    path.write_text(FAST)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path, device: Path) -> Path:
    """One complete table of the tiny space, built once; tests work on copies."""
    tmp = tmp_path_factory.mktemp("built")
    lut = tmp / "lut.json"
    _finish(_cmd(device, tiny_run, lut), _env(tmp))
    return lut


def _cmd(device: Path, run: Path, lut: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hwofa", "profile", "--device", str(device), "--supernet", str(run),
            "--lut", str(lut), *extra]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "HWOFA_HOME": str(tmp_path / "home")}


def _kill_when(cmd: list[str], env: dict[str, str], partial: Path, ready, timeout: float = 120) -> dict:
    """Start `cmd`, SIGKILL it once the partial file satisfies `ready`; return that partial."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            if proc.poll() is not None:
                pytest.fail("the build finished before it could be killed")
            try:
                data = json.loads(partial.read_text())
            except (OSError, ValueError):
                data = None
            if data is not None and ready(data):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return json.loads(partial.read_text())
            time.sleep(0.02)
        pytest.fail("the build never reached the kill point")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _remeasured(header: dict, what: str) -> set[str]:
    return {k for r in header.get("remeasured", []) for k in r[what]}


def _finish(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_killed_build_resumes_without_measuring_twice(tmp_path, tiny_run, device):
    lut, partial = tmp_path / "lut.json", tmp_path / "lut.partial.json"
    cmd, env = _cmd(device, tiny_run, lut), _env(tmp_path)
    before = _kill_when(cmd, env, partial, lambda d: len(d["entries"]) >= 5)
    assert not lut.exists(), "a partial table must never sit at the table's path"
    _finish(cmd, env)
    final = json.loads(lut.read_text())
    assert not partial.exists() and final["calibration"] is not None
    again = _remeasured(final["header"], "entries")
    for key, entry in before["entries"].items():
        if key not in again:
            assert final["entries"][key]["rounds"] == entry["rounds"], f"{key} was measured twice"


def test_killed_calibration_resumes_without_measuring_twice(tmp_path, tiny_run, device):
    lut, partial = tmp_path / "lut.json", tmp_path / "lut.partial.json"
    cmd, env = _cmd(device, tiny_run, lut), _env(tmp_path)
    before = _kill_when(cmd, env, partial, lambda d: len(d["header"].get("calibration_partial", [])) >= 3)
    _finish(cmd, env)
    final = json.loads(lut.read_text())
    again = _remeasured(final["header"], "subnets")
    points = {p["arch_key"]: p for p in final["calibration"]["subnets"]}
    kept = [p for p in before["header"]["calibration_partial"] if p["arch_key"] not in again]
    assert kept
    for p in kept:
        assert points[p["arch_key"]]["rounds"] == p["rounds"], "a calibration subnet was measured twice"
    for key, entry in before["entries"].items():
        if key not in _remeasured(final["header"], "entries"):
            assert final["entries"][key]["rounds"] == entry["rounds"]


def test_killed_rebuild_keeps_the_cached_table_and_resumes(tmp_path, tiny_run, device, built):
    lut, partial = tmp_path / "lut.json", tmp_path / "lut.partial.json"
    cmd, env = _cmd(device, tiny_run, lut), _env(tmp_path)
    shutil.copy(built, lut)
    good = _sha(lut)
    rebuild = [*cmd, "--rebuild"]
    before = _kill_when(rebuild, env, partial, lambda d: len(d["entries"]) >= 5)
    assert _sha(lut) == good, "a killed --rebuild replaced the complete table"
    _finish(rebuild, env)
    final = json.loads(lut.read_text())
    assert _sha(lut) != good and not partial.exists()
    again = _remeasured(final["header"], "entries")
    for key, entry in before["entries"].items():
        if key not in again:
            assert final["entries"][key]["rounds"] == entry["rounds"], "--rebuild started again from 0"


def test_stale_table_is_kept_beside_the_new_one(tmp_path, tiny_run, device, built):
    lut = tmp_path / "lut.json"
    cmd, env = _cmd(device, tiny_run, lut), _env(tmp_path)
    data = json.loads(built.read_text())
    data["header"]["host"]["cpu"] = data["header"]["target"]["cpu"] = "Some Board CPU @ 1.2GHz"
    data["header"]["host"]["hostname"] = "board7"
    lut.write_text(json.dumps(data))
    foreign = _sha(lut)
    _finish(cmd, env)
    kept = [p for p in tmp_path.glob("lut.*.json") if "partial" not in p.name]
    assert len(kept) == 1 and "board7" in kept[0].name and _sha(kept[0]) == foreign
    assert json.loads(lut.read_text())["header"]["host"]["cpu"] != "Some Board CPU @ 1.2GHz"


def test_truncated_table_names_the_way_out(tmp_path, tiny_run, device, built):
    lut = tmp_path / "lut.json"
    cmd, env = _cmd(device, tiny_run, lut), _env(tmp_path)
    lut.write_text(built.read_text()[:500])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--rebuild" in done.stderr and "not valid JSON" in done.stderr


def test_degraded_table_is_written_marked_and_warned(tmp_path, tiny_run):
    device = tmp_path / "strict.yaml"
    device.write_text(FAST.replace("retry_s: 0", "retry_s: 0, tolerance_pct: 0.01, min_share: 1.0"))
    lut = tmp_path / "lut.json"
    done = _finish(_cmd(device, tiny_run, lut), _env(tmp_path))
    table = json.loads(lut.read_text())
    assert table["header"]["quality"]["status"] == "degraded"
    assert "DEGRADED" in done.stdout + done.stderr
    again = _finish(_cmd(device, tiny_run, lut), _env(tmp_path))  # cached: still says so
    assert "DEGRADED" in again.stdout + again.stderr


def test_run_with_a_profile_yaml_path(tmp_path, tiny_run_with_predictor, device):
    """A device given as a YAML path is named by its file stem everywhere (search.json, model.json)."""
    env = _env(tmp_path)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "hwofa", "run", "--device", str(device), "--supernet",
                           str(tiny_run_with_predictor), "--latency-ms", "100", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads((out / "model.json").read_text())["device"] == "tinycpu"
    assert "tinycpu" in json.loads((out / "search.json").read_text())["devices"]
