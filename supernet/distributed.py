"""Data-parallel training on PyTorch's own engine (torch.distributed), started by `torchrun`.

`torchrun --nproc_per_node N -m hwofa train ...` starts N copies of the trainer; each reads
RANK / WORLD_SIZE / LOCAL_RANK from the environment and joins one process group (gloo on
the CPU, NCCL on CUDA). The trainer keeps every rank in lock step:

- every rank draws the same subnets and the same global batch from the step's seed, and
  trains on its own shard of that batch (deterministic sharding, no sampler state);
- gradients are averaged with one all-reduce after the backward passes of a step (not with
  DistributedDataParallel: a step runs several subnets, each touching a different subset of
  the weights, and DDP would need `find_unused_parameters` plus `no_sync` for that);
- only rank 0 reads and writes the run folder; whatever it reads (resume point, weights,
  optimiser state, teacher) reaches the other ranks by broadcast, so a node without the
  run folder can join a resumed run.

Without torchrun (no WORLD_SIZE, or WORLD_SIZE=1) everything here is a no-op.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from hwofa.common.errors import UserError

log = logging.getLogger(__name__)
T = TypeVar("T")
TIMEOUT = datetime.timedelta(minutes=30)  # a rank waits this long for its peers (rank 0 evaluates alone)


class PeerLost(RuntimeError):
    """A collective failed: another rank crashed, was killed, or lost its connection."""


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- collectives ------------------------------------------------------------
    def from_rank0(self, fn: Callable[[], T]) -> T:
        """Run `fn` on rank 0 only and hand its result (or its UserError) to every rank."""
        if not self.enabled:
            return fn()
        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except UserError as exc:
                box[0] = ("error", str(exc))
        _guard(lambda: dist.broadcast_object_list(box, src=0, device=self._object_device()), self.rank)
        status, value = box[0]
        if status == "error":
            raise UserError(value)
        return value

    def broadcast_tensors(self, tensors: Iterable[torch.Tensor]) -> None:
        """Overwrite the tensors (in place) with rank 0's values."""
        tensors = list(tensors)
        if self.enabled and tensors:
            flat = _flatten(tensors, self.device)
            _guard(lambda: dist.broadcast(flat, src=0), self.rank)
            _unflatten(flat, tensors)

    def average(self, tensors: Iterable[torch.Tensor]) -> None:
        """Replace the tensors (in place) by their mean over all ranks (one all-reduce)."""
        tensors = list(tensors)
        if self.enabled and tensors:
            flat = _flatten(tensors, self.device)
            _guard(lambda: dist.all_reduce(flat, op=dist.ReduceOp.SUM), self.rank)
            _unflatten(flat.div_(self.world_size), tensors)

    def average_gradients(self, params: Iterable[nn.Parameter]) -> None:
        """Average the gradients of a step over the ranks. Every rank ran the same subnets, so the same
        parameters hold gradients everywhere; a count travels along and a mismatch is an error."""
        if not self.enabled:
            return
        grads = [p.grad for p in params if p.grad is not None]
        count = torch.tensor([float(len(grads))], device=self.device)
        self.average([*grads, count])
        if round(count.item()) != len(grads):
            raise RuntimeError(f"rank {self.rank}: ranks trained different subnets in one step ({len(grads)} "
                               f"gradients here, {count.item():.2f} on average); the subnet sampler diverged.")

    def sync_module(self, module: nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers."""
        self.broadcast_tensors(t for t in module.state_dict().values() if t.is_floating_point())
        self.broadcast_tensors(t for t in module.state_dict().values() if not t.is_floating_point())

    def average_bn_statistics(self, module: nn.Module) -> None:
        """Running BN statistics: each rank saw only its shards, so take their mean (as the model is
        evaluated only after an exact per-subnet recalibration, this only feeds the frozen teacher)."""
        stats = [b for n, b in module.named_buffers() if n.endswith(("running_mean", "running_var"))]
        self.average(stats)

    def barrier(self) -> None:
        if self.enabled:
            _guard(dist.barrier, self.rank)

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def _object_device(self) -> torch.device | None:
        return self.device if self.device.type == "cuda" else None


def parse_device(name: str) -> torch.device:
    """`--torch-device` as a torch.device, or a UserError saying what to pass instead."""
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"--torch-device '{name}' is not a torch device name (use cpu, cuda or cuda:N).") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--torch-device {name}: this torch build or machine has no CUDA GPU; use --torch-device cpu.")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"--torch-device {name}: only cpu and cuda are supported.")
    return dev


def init_from_env(torch_device: str = "cpu") -> DistContext:
    """Join the process group torchrun describes in the environment; a one-process context without it."""
    requested = parse_device(torch_device)
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistContext(device=requested)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if requested.type == "cuda":
        if requested.index is not None:
            raise UserError(f"--torch-device {torch_device}: under torchrun each process uses the GPU of its "
                            "LOCAL_RANK; pass --torch-device cuda without an index (limit GPUs with "
                            "CUDA_VISIBLE_DEVICES).")
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"rank {rank}: --torch-device cuda needs GPU {local_rank} (LOCAL_RANK) but this node has "
                            f"{torch.cuda.device_count()}; start at most that many processes per node "
                            "(--nproc_per_node).")
        device, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(device)
    else:
        device, backend = torch.device("cpu"), "gloo"
    try:
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=TIMEOUT)
    except (RuntimeError, ValueError) as exc:
        raise PeerLost(f"rank {rank}: could not join the {backend} process group of {world} ranks ({exc}).") from exc
    log.info("rank %d of %d (%s, %s)", rank, world, backend, device)
    return DistContext(rank, world, local_rank, device)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise UserError(f"environment variable {name}='{value}' is not an integer (set by torchrun).") from None


def _guard(fn: Callable[[], Any], rank: int) -> None:
    try:
        fn()
    except (RuntimeError, dist.DistBackendError) as exc:
        raise PeerLost(f"rank {rank}: lost contact with the other ranks ({str(exc).splitlines()[0]}); another rank "
                       "probably crashed or was killed. The run folder holds the last complete checkpoint: rerun "
                       "with --resume (with any number of processes).") from exc


def _flatten(tensors: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """One contiguous buffer (float32, or int64 for integer tensors): one collective instead of many."""
    dtype = torch.float32 if tensors[0].is_floating_point() else torch.int64
    return torch.cat([t.detach().reshape(-1).to(device, dtype) for t in tensors])


def _unflatten(flat: torch.Tensor, tensors: list[torch.Tensor]) -> None:
    offset = 0
    with torch.no_grad():
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view(t.shape))
            offset += n
