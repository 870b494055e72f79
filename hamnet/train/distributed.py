"""Multi-process training with ``torch.distributed``.

``torchrun --nproc_per_node=N -m hamnet train CONFIG`` starts N processes with the
environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_distributed` reads them and joins the process group (gloo
on CPU, nccl on GPU). Without them training runs in one process and every helper here is
a no-op.

Gradient synchronization is :class:`torch.nn.parallel.DistributedDataParallel`. TraceGrad
calls ``torch.autograd.grad(..., create_graph=True)`` inside the forward pass; that
computes gradients with respect to *features* only and never accumulates into parameter
``.grad``, so DDP's reducer (hooked on parameter gradient accumulation) sees exactly one
gradient per parameter per step, in the final ``loss.backward()``, and no special mode is
needed. ``find_unused_parameters`` stays off (every parameter reaches the loss; the 2-rank
test checks that parameters agree after several steps).
"""

from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass


import torch
import torch.distributed as dist
from torch import nn

from hamnet.errors import ConfigError

__all__ = [
    "DistEnv",
    "init_distributed",
    "shutdown_distributed",
    "wrap_model",
    "any_flag",
    "barrier",
    "broadcast_object",
    "free_port",
]


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: ``rank`` of ``world_size``, its device, whether it writes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs, metrics and prints."""
        return self.rank == 0


def _pick_device(preference: str, local_rank: int) -> torch.device:
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {preference!r} was requested but CUDA is not available")
        if preference == "cuda":
            return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(preference)


def init_distributed(device: str = "auto", timeout_minutes: float = 30.0) -> DistEnv:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1).

    Parameters
    ----------
    device : "auto", "cpu", "cuda" or "cuda:N"
        ``auto`` is CUDA when available; each process then takes GPU ``LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = _pick_device(device, local)
    if world <= 1:
        return DistEnv(0, 1, 0, dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend, rank=rank, world_size=world,
            timeout=datetime.timedelta(minutes=timeout_minutes),
        )
    return DistEnv(rank, world, local, dev)


def shutdown_distributed(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, env: DistEnv) -> nn.Module:
    """DistributedDataParallel around ``model`` in a process group; ``model`` itself otherwise."""
    if not env.enabled:
        return model
    ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)


def any_flag(flags: list, env: DistEnv) -> list:
    """Element-wise OR of boolean flags over all processes (all see the same answer)."""
    if not env.enabled:
        return [bool(f) for f in flags]
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v > 0) for v in t.tolist()]


def barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()


def broadcast_object(obj, env: DistEnv):
    """Rank 0's ``obj`` on every process."""
    if not env.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (for ``MASTER_PORT`` in local launches)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
