"""Progressive shrinking: full network -> elastic kernel -> elastic depth -> elastic expand.

Each later phase trains several subnets per step (always the phase's largest and
smallest, plus random ones: the sandwich rule) and distils from the full network
frozen after the first phase, or (a phase's `kd_teacher: inplace`) from the step's own
largest subnet on the same images. Every epoch ends with an atomic checkpoint of the
weights, the optimiser state and the progress; `resume=True` continues from it.

Data parallel (see supernet/distributed.py): the subnets and the global batch of a step
come from the step's seed, identical on every rank; each rank trains its micro-batches of
that batch and the gradients are averaged before the optimiser step. Only rank 0 touches
the run folder, so a checkpoint is the same whatever the number of ranks, and a run can be
resumed with any number of them.
"""

from __future__ import annotations

import contextlib
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

from hwofa.common.errors import UserError
from hwofa.common.files import read_json
from supernet._train_state import committed_weights, prune_state, save_state, state_path
from supernet.bn import check_dataset, predict_logits, recalibrate_bn, top1
from supernet.checkpoint import load_tensors, save_supernet, save_tensors
from supernet.data import Dataset, apply_augment, augment_params, preprocess, train_val_split
from supernet.distributed import DistContext, parse_device
from supernet.meta import SupernetMeta
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


def check_amp(amp: bool, device: torch.device) -> bool:
    """bf16 autocast is for CUDA GPUs; asked for anywhere else it is refused (never silently ignored)."""
    if not amp:
        return False
    if device.type != "cuda":
        raise UserError("--amp (bf16 autocast) needs a CUDA GPU (--torch-device cuda); on the CPU it would only "
                        "slow training down and change its numerics. Train without --amp.")
    if not torch.cuda.is_bf16_supported():
        raise UserError(f"--amp: GPU '{torch.cuda.get_device_name(device)}' does not support bf16; train without "
                        "--amp.")
    return True


def micro_batches(recipe: Recipe, world_size: int) -> tuple[int, int]:
    """(micro-batch size, micro-batches per rank and step) for `world_size` ranks sharing each global batch."""
    mb = recipe.micro_batch_size or recipe.batch_size // world_size
    n = recipe.batch_size // mb if mb else 0
    if mb < 1 or recipe.batch_size % mb or n % world_size:
        fixed = f"{recipe.batch_size // mb} micro-batches of {mb}" if recipe.micro_batch_size else \
            f"batch_size {recipe.batch_size}"
        raise UserError(f"{world_size} processes cannot share a step of {fixed} evenly; start a number of "
                        "processes that divides it, or change batch_size / micro_batch_size in the recipe.")
    return mb, n // world_size


class Trainer:
    """Runs a recipe into a run folder; all state needed to resume lives in that folder."""

    def __init__(self, recipe: Recipe, data: Dataset, run: str | Path, device: str = "cpu", amp: bool = False,
                 dist: DistContext | None = None) -> None:
        self.recipe, self.data, self.run = recipe, data, Path(run)
        self.dist = dist or DistContext(device=parse_device(device))
        self.device = self.dist.device
        self.amp = check_amp(amp, self.device)
        self.space = recipe.search_space()
        if data.train_x.shape[1] != self.space.in_channels:
            raise UserError(f"dataset '{data.name}' has {data.train_x.shape[1]} channel(s) but the space expects "
                            f"{self.space.in_channels}; set space.in_channels in the recipe (RGB recipes: "
                            "supernet/recipes/cifar10.yaml, supernet/recipes/imagefolder.yaml).")
        if len(data.classes) != self.space.num_classes:
            raise UserError(f"dataset '{data.name}' has {len(data.classes)} classes but the space has "
                            f"{self.space.num_classes} outputs; set space.num_classes in the recipe.")
        self.micro_batch, self.micro_per_rank = micro_batches(recipe, self.dist.world_size)
        self.mean, self.std = data.mean_std()
        self.train_idx, self.val_idx = train_val_split(len(data.train_y), recipe.val_size, recipe.data_seed)
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
                            "val_size": self.recipe.val_size, "split_seed": self.recipe.data_seed,
                            "train_images": len(self.train_idx)},
                "recipe": self.recipe.to_dict(), "progress": progress, "history": self.history,
                "metrics": final or {}}

    def _checkpoint(self, phase_idx: int, epoch: int, opt: torch.optim.Optimizer) -> None:
        """Optimizer state and a weights copy first (content-addressed), then the weights, then supernet.json:
        the JSON (naming both hashes and the progress) is the single commit point (see _train_state.py)."""
        state = {f"{i}.{k}": v for i, s in opt.state_dict()["state"].items() for k, v in s.items()
                 if torch.is_tensor(v)}
        opt_sha = save_state(self.run, "optimizer", state)
        weights_sha = save_state(self.run, "supernet", self.net.state_dict())
        progress = {"phase": phase_idx, "epoch": epoch, "optimizer_sha256": opt_sha}
        save_supernet(self.run, self.net, self.meta(progress))
        prune_state(self.run, {opt_sha, weights_sha})

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
        record = SupernetMeta.from_dict(meta, self.run / "supernet.json")
        check_dataset(record.dataset, self.data)
        self._optimizer_sha = prog.get("optimizer_sha256")
        phase, epoch = prog["phase"], prog["epoch"]
        self._check_resumable(record.recipe, phase, epoch)
        sha = record.weights_sha256
        self.net.load_state_dict(load_tensors(committed_weights(self.run, sha), "supernet", sha))
        self.history = record.history
        return phase, epoch

    def _check_resumable(self, started: dict[str, Any], phase: int, epoch: int) -> None:
        """A resumed run may change only the phases it has not begun (to extend or shorten training)."""
        now = self.recipe.to_dict()
        with contextlib.suppress(UserError):  # keys added since the run began take their defaults
            started = Recipe.from_dict(started).to_dict()
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
        """Train the recipe; returns the final metrics (on rank 0; an empty dict on the other ranks)."""
        if self.dist.from_rank0(self.data.fingerprint) != self.data.fingerprint():
            raise UserError(f"rank {self.dist.rank}: dataset '{self.data.name}' differs from rank 0's (sha256 "
                            f"{self.data.fingerprint()[:12]}…); every node needs the same files.")
        start_phase, start_epoch = self.dist.from_rank0(lambda: self._start_point(resume))
        self.dist.sync_module(self.net)
        for p_idx, phase in enumerate(self.recipe.phases):
            if p_idx < start_phase:
                continue
            first_epoch = start_epoch if p_idx == start_phase else 0
            if first_epoch >= phase.epochs:
                continue
            self._run_phase(p_idx, phase, first_epoch)
        if not self.dist.is_main:
            return {}
        final = self.final_metrics()
        save_supernet(self.run, self.net, self.meta({"phase": len(self.recipe.phases), "epoch": 0}, final))
        return final

    def _start_point(self, resume: bool) -> tuple[int, int]:
        start = self._resume_point() if resume else (0, 0)
        if not resume and (self.run / "supernet.json").is_file():
            raise UserError(f"'{self.run}' already holds a supernet; pass --resume to continue its training or "
                            "choose another --out (nothing was overwritten).")
        return start

    def _run_phase(self, p_idx: int, phase: Phase, first_epoch: int) -> None:
        if phase.kd_ratio > 0 and phase.kd_teacher == "frozen":
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
            bar = tqdm(range(steps), desc=f"{phase.name} {epoch + 1}/{phase.epochs}", leave=False,
                       disable=not self.dist.is_main)
            for step in bar:
                lr = 0.5 * phase.lr * (1 + math.cos(math.pi * (epoch * steps + step) / (phase.epochs * steps)))
                for group in opt.param_groups:
                    group["lr"] = lr
                idx = order[step * self.recipe.batch_size:(step + 1) * self.recipe.batch_size]
                losses.append(self._step(phase, self._shard(idx, gen), rng, opt))
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
            self._end_epoch(p_idx, phase, epoch, opt, sum(losses) / len(losses), time.time() - t0)

    def _shard(self, idx: torch.Tensor, gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's micro-batches of a global batch; the augmentation is drawn for the whole batch."""
        params = augment_params(len(idx), gen)
        first = self.dist.rank * self.micro_per_rank
        out = []
        for m in range(first, first + self.micro_per_rank):
            sl = slice(m * self.micro_batch, (m + 1) * self.micro_batch)
            images = apply_augment(self.data.train_x[idx[sl]], params[sl])
            out.append((images.to(self.device, non_blocking=True), self.data.train_y[idx[sl]].to(self.device)))
        return out

    def _end_epoch(self, p_idx: int, phase: Phase, epoch: int, opt: torch.optim.Optimizer, loss: float,
                   seconds: float) -> None:
        """Make the ranks agree (BN statistics, mean loss); rank 0 evaluates and writes the checkpoint."""
        self.dist.average_bn_statistics(self.net)
        mean_loss = torch.tensor([loss], device=self.device)
        self.dist.average([mean_loss])
        if not self.dist.is_main:
            return
        record = {"phase": phase.name, "epoch": epoch + 1, "loss": mean_loss.item(), "seconds": round(seconds, 1),
                  "ranks": self.dist.world_size, **self.val_metrics()}
        self.history.append(record)
        log.info("%s", record)
        self._checkpoint(p_idx, epoch + 1, opt)
        frozen_later = any(p.kd_ratio > 0 and p.kd_teacher == "frozen" for p in self.recipe.phases[1:])
        if p_idx == 0 and epoch + 1 == phase.epochs and frozen_later:
            save_tensors(self.run / "train_state" / "teacher.safetensors", self.net.state_dict())

    def _step(self, phase: Phase, micro: list[tuple[torch.Tensor, torch.Tensor]], rng: random.Random,
              opt: torch.optim.Optimizer) -> float:
        """Each micro-batch's gradient (summed over the step's subnets) is formed on its own and the micro-batches
        are then averaged, so one process with 2 micro-batches adds exactly what 2 ranks' all-reduce adds."""
        archs = phase_archs(self.space, phase, rng)  # same rng state on every rank: same subnets
        params = list(self.net.parameters())
        summed: list[torch.Tensor | None] | None = None
        total = 0.0
        for images, labels in micro:
            total += self._micro_step(phase, archs, images, labels) / len(micro)
            if len(micro) > 1:
                grads = [p.grad for p in params]
                summed = grads if summed is None else [g if s is None else s if g is None else s + g
                                                       for s, g in zip(summed, grads, strict=True)]
                opt.zero_grad(set_to_none=True)
        if summed is not None:
            for p, g in zip(params, summed, strict=True):
                p.grad = None if g is None else g / len(micro)
        self.dist.average_gradients(params)
        torch.nn.utils.clip_grad_norm_(params, self.recipe.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return total

    def _micro_step(self, phase: Phase, archs: list[ArchSpec], images: torch.Tensor, labels: torch.Tensor) -> float:
        teacher_cache: dict[int, torch.Tensor] = {}
        inplace = phase.kd_ratio > 0 and phase.kd_teacher == "inplace"
        soft: torch.Tensor | None = None  # in-place distillation: the largest subnet's logits, detached
        total = 0.0
        for i, arch in enumerate(archs):
            self.net.set_arch(arch)
            x = preprocess(images, arch.resolution, self.mean, self.std).contiguous(memory_format=torch.channels_last)
            with self._autocast():
                logits = self.net(x)
                loss = F.cross_entropy(logits, labels)
                if inplace and i > 0:
                    loss = loss + phase.kd_ratio * distill_loss(logits.float(), soft, self.recipe.kd_temperature)
                elif phase.kd_ratio > 0 and self.teacher is not None and not inplace:
                    if arch.resolution not in teacher_cache:
                        with torch.no_grad():
                            teacher_cache[arch.resolution] = self.teacher(x)
                    loss = loss + phase.kd_ratio * distill_loss(logits.float(), teacher_cache[arch.resolution].float(),
                                                                self.recipe.kd_temperature)
            if inplace and i == 0:
                soft = logits.detach().float()
            (loss / len(archs)).backward()
            total += loss.item() / len(archs)
        return total

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()

    def _steps_per_epoch(self) -> int:
        steps = len(self.train_idx) // self.recipe.batch_size
        if self.recipe.max_steps_per_epoch:
            steps = min(steps, self.recipe.max_steps_per_epoch)
        if steps < 1:
            raise UserError(f"training set of {len(self.train_idx)} images is smaller than one batch "
                            f"({self.recipe.batch_size}).")
        return steps

    def _load_teacher(self) -> None:
        if self.teacher is None:
            self.teacher = copy.deepcopy(self.net)
            self.teacher.load_state_dict(self.dist.from_rank0(self._teacher_state))
            self.teacher.set_arch(self.space.largest())
            self.teacher.eval().requires_grad_(False)

    def _teacher_state(self) -> dict[str, torch.Tensor]:
        """Rank 0: the frozen full network of the first phase (saved now if the run has none yet)."""
        path = self.run / "train_state" / "teacher.safetensors"
        if path.is_file():
            return load_tensors(path, "teacher")
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        save_tensors(path, state)
        return state

    def _load_optimizer(self, opt: torch.optim.Optimizer) -> None:
        flat = self.dist.from_rank0(lambda: load_tensors(state_path(self.run, "optimizer", self._optimizer_sha),
                                                         "optimizer state", self._optimizer_sha))
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
