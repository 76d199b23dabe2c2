"""Data-parallel training under torchrun (gloo, 2 CPU processes) against one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from hwofa.common import UserError
from supernet import load_recipe, load_supernet
from supernet.recipe import Recipe
from supernet.train import Trainer, check_amp, micro_batches
from tests.conftest import TINY_RECIPE

# Two phases without distillation: "full" (one subnet a step) and a sandwich phase (three subnets a
# step, one of them random), so a rank that sampled other subnets than its peer would show.
EQUIV = {**TINY_RECIPE, "batch_size": 32, "micro_batch_size": 16, "max_steps_per_epoch": 3,
         "phases": [TINY_RECIPE["phases"][0], {**TINY_RECIPE["phases"][2], "kd_ratio": 0.0}]}
# One process forms each micro-batch's gradient on its own and then averages them, which is what the
# all-reduce of 2 ranks adds: the weights come out bitwise equal here (max difference 0.0). The margin
# is for summation-order noise on other builds. A plain accumulation in another order would not stay
# this close: the biases of the BN layers that feed another BN have a gradient of exactly zero in exact
# arithmetic, and AdamW turns their float noise into updates of the size of the learning rate (~1e-4
# after six steps, measured).
ATOL = 1e-6


def torchrun(nproc: int, *args: object) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "hwofa", "train", *map(str, args)]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "HWOFA_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1", "PYTHONPATH":
            str(Path(__file__).resolve().parents[2])}


def _write(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, fmnist):
    recipe_path = _write(tmp_path / "equiv.yaml", EQUIV)
    env = _env(tmp_path)
    proc = subprocess.run(torchrun(2, "--dataset", "fashion-mnist", "--recipe", recipe_path, "--out",
                                   tmp_path / "ddp"), env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("supernet written") == 1  # rank 0 alone reports (and writes)

    single = Trainer(load_recipe(recipe_path), fmnist, tmp_path / "one")
    init = {k: v.clone() for k, v in single.net.state_dict().items()}
    single.fit()
    a, b = load_file(tmp_path / "ddp" / "supernet.safetensors"), load_file(tmp_path / "one" / "supernet.safetensors")
    params = dict(single.net.named_parameters())
    worst = max((a[k] - b[k]).abs().max().item() for k in params)
    moved = max((b[k] - init[k].cpu()).abs().max().item() for k in params)
    assert worst < ATOL, f"max |ddp - single| over parameters {worst:.2e}"
    assert moved > 50 * ATOL  # the comparison is not vacuous: training moved the weights by far more
    # BN running statistics are not parameters: the ranks' are averaged once an epoch, one process
    # updates them per micro-batch. Subnets never use them (each is recalibrated before evaluation).
    hist = json.loads((tmp_path / "ddp" / "supernet.json").read_text())["history"]
    assert {h["ranks"] for h in hist} == {2} and len(hist) == 3


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = (task / "children").read_text().split()
        out += [int(k) for k in kids]
    return out + [g for k in out for g in _children(k)]


def _rank_pid(launcher: int, rank: int) -> int | None:
    for pid in _children(launcher):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and b"LOCAL_RANK=" + str(rank).encode() in environ:
            return pid
    return None


def test_killed_rank_ends_the_job_and_resume_continues_with_another_number_of_processes(tmp_path):
    recipe = {**EQUIV, "phases": [{**TINY_RECIPE["phases"][0], "epochs": 8}, *EQUIV["phases"][1:]]}
    recipe_path, env, run = _write(tmp_path / "long.yaml", recipe), _env(tmp_path), tmp_path / "run"
    job = subprocess.Popen(torchrun(2, "--dataset", "fashion-mnist", "--recipe", recipe_path, "--out", run),
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, victim = time.monotonic() + 120, None
    while time.monotonic() < deadline and job.poll() is None:
        meta = run / "supernet.json"
        if meta.is_file() and json.loads(meta.read_text())["progress"]["epoch"] >= 1:
            victim = _rank_pid(job.pid, 1)
            if victim is not None:
                os.kill(victim, signal.SIGKILL)
                break
        time.sleep(0.05)
    _, err = job.communicate(timeout=120)
    assert victim is not None, "rank 1 was not found before the job ended"
    assert job.returncode != 0 and "exitcode" in err and "-9" in err, err[-2000:]  # torchrun names the dead rank
    net, meta = load_supernet(run)  # the last checkpoint is complete and consistent (hash checked)
    done = meta.progress["epoch"]
    assert 1 <= done < 8 and len(meta.history) == done

    proc = subprocess.run([sys.executable, "-m", "hwofa", "train", "--dataset", "fashion-mnist", "--recipe",
                           recipe_path, "--out", run, "--resume"], env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((run / "supernet.json").read_text())
    assert [h["epoch"] for h in meta["history"]] == [*range(1, 9), 1, 2]  # each epoch once, none repeated
    assert [h["ranks"] for h in meta["history"]][done - 1:done + 1] == [2, 1]


def test_processes_must_share_a_step_evenly():
    recipe = Recipe.from_dict(EQUIV)
    assert micro_batches(recipe, 1) == (16, 2) and micro_batches(recipe, 2) == (16, 1)
    with pytest.raises(UserError, match="3 processes cannot share a step of 2 micro-batches of 16"):
        micro_batches(recipe, 3)
    free = Recipe.from_dict({**EQUIV, "micro_batch_size": None})
    assert micro_batches(free, 4) == (8, 1)
    with pytest.raises(UserError, match="batch_size 32"):
        micro_batches(free, 3)
    with pytest.raises(UserError, match="multiple of micro_batch_size"):
        Recipe.from_dict({**EQUIV, "micro_batch_size": 12})


def test_amp_is_refused_on_the_cpu(capsys, tmp_path, tiny_recipe_path):
    from hwofa.cli import main

    with pytest.raises(UserError, match="needs a CUDA GPU"):
        check_amp(True, torch.device("cpu"))
    assert check_amp(False, torch.device("cpu")) is False
    code = main(["train", "--dataset", "fashion-mnist", "--recipe", str(tiny_recipe_path), "--out",
                 str(tmp_path / "r"), "--amp"])
    err = capsys.readouterr().err
    assert code == 2 and "--amp (bf16 autocast) needs a CUDA GPU" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "supernet.json").exists()
