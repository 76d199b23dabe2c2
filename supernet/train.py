"""Progressive shrinking: full network -> elastic kernel -> elastic depth -> elastic expand.

Each later phase trains several subnets per step (always the phase's largest and
smallest, plus random ones: the sandwich rule) and distils from the full network
frozen after the first phase. Every epoch ends with an atomic checkpoint of the
weights, the optimiser state and the progress; `resume=True` continues from it.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from supernet.bn import check_dataset, predict_logits, recalibrate_bn, top1
from supernet.checkpoint import load_tensors, save_supernet, save_tensors
from supernet.data import Dataset, augment, preprocess, train_val_split
from supernet.errors import UserError
from supernet.files import read_json
from supernet.network import Supernet
from supernet.recipe import Phase, Recipe
from supernet.space import ArchSpec, SearchSpace

log = logging.getLogger(__name__)


def phase_archs(space: SearchSpace, phase: Phase, rng: random.Random) -> list[ArchSpec]:
    """Sandwich: the phase's largest and smallest subnet, then random ones."""
    dims = {d: tuple(getattr(phase, d) or getattr(space, d))
            for d in ("kernel_sizes", "expand_ratios", "depths", "resolutions")}
    largest = space.uniform(max(space.resolutions), max(dims["kernel_sizes"]), max(dims["expand_ratios"]),
                            max(dims["depths"]))
    if phase.subnets_per_step == 1:
        return [space.uniform(rng.choice(dims["resolutions"]), largest.stages[0][0].kernel_size,
                              largest.stages[0][0].expand_ratio, largest.depths[0])]
    smallest = space.uniform(min(dims["resolutions"]), min(dims["kernel_sizes"]), min(dims["expand_ratios"]),
                             min(dims["depths"]))
    archs = [largest, smallest]
    while len(archs) < phase.subnets_per_step:
        archs.append(space.sample(rng, **dims))
    return archs


def distill_loss(logits: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    t = temperature
    return F.kl_div(F.log_softmax(logits / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t


def _torch_device(name: str) -> torch.device:
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"--torch-device '{name}' is not a torch device name (use cpu, cuda or cuda:N).") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--torch-device {name}: this torch build or machine has no CUDA GPU; use --torch-device cpu.")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"--torch-device {name}: only cpu and cuda are supported.")
    return dev


class Trainer:
    """Runs a recipe into a run folder; all state needed to resume lives in that folder."""

    def __init__(self, recipe: Recipe, data: Dataset, run: str | Path, device: str = "cpu") -> None:
        self.recipe, self.data, self.run = recipe, data, Path(run)
        self.device = _torch_device(device)
        self.space = recipe.search_space()
        if data.train_x.shape[1] != self.space.in_channels:
            raise UserError(f"dataset '{data.name}' has {data.train_x.shape[1]} channel(s) but the space expects "
                            f"{self.space.in_channels}; set space.in_channels in the recipe.")
        self.mean, self.std = data.mean_std()
        self.train_idx, self.val_idx = train_val_split(len(data.train_y), recipe.val_size, recipe.seed)
        if recipe.train_limit:
            self.train_idx = self.train_idx[:recipe.train_limit]
        torch.manual_seed(recipe.seed)
        self.net = Supernet(self.space).to(self.device, memory_format=torch.channels_last)
        self.teacher: Supernet | None = None
        self.history: list[dict[str, Any]] = []
        self._optimizer_sha: str | None = None

    # ---- state ------------------------------------------------------------
    def meta(self, progress: dict[str, int], final: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"dataset": {"name": self.data.name, "sha256": self.data.fingerprint(), "mean": self.mean,
                            "std": self.std,
                            "image_size": list(self.data.train_x.shape[2:]), "classes": self.data.classes,
                            "val_size": self.recipe.val_size, "split_seed": self.recipe.seed,
                            "train_images": len(self.train_idx)},
                "recipe": self.recipe.to_dict(), "progress": progress, "history": self.history,
                "metrics": final or {}}

    def _checkpoint(self, phase_idx: int, epoch: int, opt: torch.optim.Optimizer) -> None:
        """Optimizer state first, then the weights, then supernet.json: the JSON (naming both files'
        hashes and the progress) is the single commit point, so a kill anywhere leaves a consistent run."""
        state = {f"{i}.{k}": v for i, s in opt.state_dict()["state"].items() for k, v in s.items()
                 if torch.is_tensor(v)}
        opt_sha = save_tensors(self.run / "train_state" / "optimizer.safetensors", state)
        progress = {"phase": phase_idx, "epoch": epoch, "optimizer_sha256": opt_sha}
        save_supernet(self.run, self.net, self.meta(progress))

    def _resume_point(self) -> tuple[int, int]:
        if not (self.run / "supernet.json").is_file():
            return 0, 0
        meta = read_json(self.run / "supernet.json", "supernet")
        prog = meta.get("progress") if isinstance(meta, dict) else None
        if not isinstance(prog, dict) or not all(isinstance(prog.get(k), int) for k in ("phase", "epoch")):
            raise UserError(f"--resume: '{self.run / 'supernet.json'}' holds no training progress; it is not a "
                            "run started by `hwofa train`.")
        if isinstance(meta.get("dataset"), dict) and meta["dataset"].get("name") != self.data.name:
            raise UserError(f"--resume: '{self.run}' was trained on '{meta['dataset'].get('name')}', not "
                            f"'{self.data.name}'.")
        check_dataset(meta, self.data)
        self._optimizer_sha = prog.get("optimizer_sha256")
        phase, epoch = prog["phase"], prog["epoch"]
        self._check_resumable(meta.get("recipe") or {}, phase, epoch)
        self.net.load_state_dict(load_tensors(self.run / "supernet.safetensors", "supernet",
                                              meta.get("weights_sha256")))
        self.history = meta.get("history", [])
        return phase, epoch

    def _check_resumable(self, started: dict[str, Any], phase: int, epoch: int) -> None:
        """A resumed run may change only the phases it has not begun (to extend or shorten training)."""
        now = self.recipe.to_dict()
        begun = phase + 1 if epoch > 0 else phase
        same_globals = {k: v for k, v in started.items() if k != "phases"} == \
            {k: v for k, v in now.items() if k != "phases"}
        if not same_globals or started.get("phases", [])[:begun] != now["phases"][:begun]:
            raise UserError(f"--resume: the recipe differs from the one '{self.run}' was started with in a part "
                            f"already trained (global settings or phases 1..{begun}); only phases not yet "
                            "begun may change. Use the same recipe or a new --out folder.")
        done = now["phases"][phase] if phase < len(now["phases"]) else None
        if done is not None and epoch > done["epochs"]:
            raise UserError(f"--resume: phase '{done['name']}' already ran {epoch} epochs but the recipe now "
                            f"asks for {done['epochs']}.")

    # ---- loop -------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict[str, Any]:
        start_phase, start_epoch = self._resume_point() if resume else (0, 0)
        if not resume and (self.run / "supernet.json").is_file():
            raise UserError(f"'{self.run}' already holds a supernet; pass --resume to continue its training or "
                            "choose another --out (nothing was overwritten).")
        for p_idx, phase in enumerate(self.recipe.phases):
            if p_idx < start_phase:
                continue
            first_epoch = start_epoch if p_idx == start_phase else 0
            if first_epoch >= phase.epochs:
                continue
            self._run_phase(p_idx, phase, first_epoch)
        final = self.final_metrics()
        save_supernet(self.run, self.net, self.meta({"phase": len(self.recipe.phases), "epoch": 0}, final))
        return final

    def _run_phase(self, p_idx: int, phase: Phase, first_epoch: int) -> None:
        if phase.kd_ratio > 0:
            self._load_teacher()
        if phase.sort_channels and first_epoch == 0:
            self.net.sort_channels()
        opt = torch.optim.AdamW(self.net.parameters(), lr=phase.lr, weight_decay=self.recipe.weight_decay)
        if first_epoch > 0:
            self._load_optimizer(opt)
        steps = self._steps_per_epoch()
        for epoch in range(first_epoch, phase.epochs):
            seed = self.recipe.seed * 100003 + p_idx * 1009 + epoch
            gen, rng = torch.Generator().manual_seed(seed), random.Random(seed)
            order = self.train_idx[torch.randperm(len(self.train_idx), generator=gen)]
            self.net.train()
            t0, losses = time.time(), []
            bar = tqdm(range(steps), desc=f"{phase.name} {epoch + 1}/{phase.epochs}", leave=False)
            for step in bar:
                lr = 0.5 * phase.lr * (1 + math.cos(math.pi * (epoch * steps + step) / (phase.epochs * steps)))
                for group in opt.param_groups:
                    group["lr"] = lr
                idx = order[step * self.recipe.batch_size:(step + 1) * self.recipe.batch_size]
                images = augment(self.data.train_x[idx], gen).to(self.device, non_blocking=True)
                losses.append(self._step(phase, images, self.data.train_y[idx].to(self.device), rng, opt))
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
            record = {"phase": phase.name, "epoch": epoch + 1, "loss": sum(losses) / len(losses),
                      "seconds": round(time.time() - t0, 1), **self.val_metrics()}
            self.history.append(record)
            log.info("%s", record)
            self._checkpoint(p_idx, epoch + 1, opt)
            if p_idx == 0 and epoch + 1 == phase.epochs:
                save_tensors(self.run / "train_state" / "teacher.safetensors", self.net.state_dict())

    def _step(self, phase: Phase, images: torch.Tensor, labels: torch.Tensor, rng: random.Random,
              opt: torch.optim.Optimizer) -> float:
        archs = phase_archs(self.space, phase, rng)
        teacher_cache: dict[int, torch.Tensor] = {}
        total = 0.0
        for arch in archs:
            x = preprocess(images, arch.resolution, self.mean, self.std).contiguous(
                memory_format=torch.channels_last)
            self.net.set_arch(arch)
            logits = self.net(x)
            loss = F.cross_entropy(logits, labels)
            if phase.kd_ratio > 0 and self.teacher is not None:
                if arch.resolution not in teacher_cache:
                    with torch.no_grad():
                        teacher_cache[arch.resolution] = self.teacher(x)
                loss = loss + phase.kd_ratio * distill_loss(logits, teacher_cache[arch.resolution],
                                                            self.recipe.kd_temperature)
            (loss / len(archs)).backward()
            total += loss.item() / len(archs)
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.recipe.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return total

    def _steps_per_epoch(self) -> int:
        steps = len(self.train_idx) // self.recipe.batch_size
        if self.recipe.max_steps_per_epoch:
            steps = min(steps, self.recipe.max_steps_per_epoch)
        if steps < 1:
            raise UserError(f"training set of {len(self.train_idx)} images is smaller than one batch "
                            f"({self.recipe.batch_size}).")
        return steps

    def _load_teacher(self) -> None:
        path = self.run / "train_state" / "teacher.safetensors"
        if self.teacher is None:
            self.teacher = copy.deepcopy(self.net)
            if path.is_file():
                self.teacher.load_state_dict(load_tensors(path, "teacher"))
            else:
                save_tensors(path, self.net.state_dict())
            self.teacher.set_arch(self.space.largest())
            self.teacher.eval().requires_grad_(False)

    def _load_optimizer(self, opt: torch.optim.Optimizer) -> None:
        flat = load_tensors(self.run / "train_state" / "optimizer.safetensors", "optimizer state",
                            self._optimizer_sha)
        sd = opt.state_dict()
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in flat.items():
            i, name = key.split(".", 1)
            state.setdefault(int(i), {})[name] = value
        sd["state"] = state
        opt.load_state_dict(sd)

    # ---- evaluation -------------------------------------------------------
    def subnet_top1(self, arch: ArchSpec, images: torch.Tensor, labels: torch.Tensor) -> float:
        calib = self.data.train_x[self.train_idx[:self.recipe.bn_calib_images]]
        sub = recalibrate_bn(self.net.extract(arch).to(self.device), calib, arch.resolution, self.mean, self.std)
        return top1(predict_logits(sub, images, arch.resolution, self.mean, self.std), labels)

    def val_metrics(self) -> dict[str, float]:
        vx, vy = self.data.train_x[self.val_idx], self.data.train_y[self.val_idx]
        return {"val_top1_largest": self.subnet_top1(self.space.largest(), vx, vy),
                "val_top1_smallest": self.subnet_top1(self.space.smallest(), vx, vy)}

    def final_metrics(self) -> dict[str, Any]:
        """Test top-1 of the smallest, a middle and the largest subnet (BN recalibrated)."""
        sp = self.space
        mid = sp.uniform(*(v[len(v) // 2] for v in (sp.resolutions, sp.kernel_sizes, sp.expand_ratios, sp.depths)))
        out = {}
        for name, arch in (("smallest", sp.smallest()), ("middle", mid), ("largest", sp.largest())):
            out[name] = {"arch": arch.to_dict(), "test_top1": self.subnet_top1(arch, self.data.test_x,
                                                                               self.data.test_y)}
        return {"test_top1": out, "split": "test"}
