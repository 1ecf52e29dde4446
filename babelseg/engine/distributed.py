"""Distributed helpers: torchrun environment, process group, collectives and DDP wrapping.

One process per device, launched by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``). Without those variables everything runs in a
single process and every helper here is a cheap no-op, so the same training code serves both.
CPU processes talk over ``gloo``, CUDA processes over ``nccl``.

Example::

    ctx = init_distributed("cuda")
    model = wrap_ddp(model, ctx)
    loss_mean = all_reduce_mean(loss.detach())
    if ctx.is_main:
        ...  # rank 0 alone writes
    cleanup()
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

_TORCHRUN_HINT = (
    "Launch with torchrun (e.g. `torchrun --nproc_per_node 2 -m babelseg train ...`), which sets "
    "RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, or unset WORLD_SIZE to run in one "
    "process."
)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the job.

    Attributes:
        rank: Global rank, 0..world_size-1.
        world_size: Number of processes (1 when not launched by torchrun).
        local_rank: Rank on this machine; picks the CUDA device.
        device: The device this process computes on.
        is_main: True on rank 0, the only rank that writes files.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    is_main: bool

    @property
    def is_distributed(self) -> bool:
        """True when more than one process takes part (a process group exists)."""
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(
            f"Environment variable {name}={raw!r} is not an integer. {_TORCHRUN_HINT}"
        ) from None


def _is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def init_distributed(device: str = "cpu", *, timeout_s: float = 1800.0) -> DistributedContext:
    """Read the torchrun environment and join the process group when there is more than one rank.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (any torch device string for a single
            process). With several CUDA processes each one uses ``cuda:LOCAL_RANK`` and makes it
            the current device.
        timeout_s: How long collectives wait for the other ranks before failing.

    Returns:
        The context of this process. With world size 1 no process group is created.

    Raises:
        ValueError: malformed torchrun variables, ranks out of range, a CUDA device requested
            where none is available, or a device type that cannot run distributed.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank if world_size > 1 else 0)
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(
            f"Inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world_size}, "
            f"LOCAL_RANK={local_rank} (need 0 <= RANK < WORLD_SIZE). {_TORCHRUN_HINT}"
        )
    try:
        requested = torch.device(device)
    except RuntimeError:
        raise ValueError(f"Unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'.") from None
    if requested.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"Device {device!r} was requested but CUDA is not available on this machine; "
                "use device 'cpu'."
            )
        if world_size > 1:
            index = local_rank
        else:
            index = requested.index if requested.index is not None else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"CUDA device {index} (LOCAL_RANK={local_rank}) was requested, but only "
                f"{torch.cuda.device_count()} are visible; start at most that many processes per "
                "machine (torchrun --nproc_per_node) or pick a visible device."
            )
        requested = torch.device("cuda", index)
        torch.cuda.set_device(requested)
    ctx = DistributedContext(
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        device=requested,
        is_main=rank == 0,
    )
    if world_size == 1:
        return ctx
    if requested.type not in ("cpu", "cuda"):
        raise ValueError(
            f"Device {device!r} cannot run with several processes; use 'cpu' (gloo) or 'cuda' "
            "(nccl)."
        )
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise ValueError(
            f"WORLD_SIZE={world_size} but {', '.join(missing)} unset. {_TORCHRUN_HINT}"
        )
    if _is_initialized():
        if dist.get_world_size() != world_size or dist.get_rank() != rank:
            raise ValueError(
                f"A process group already exists with rank {dist.get_rank()} of "
                f"{dist.get_world_size()}, but the environment says rank {rank} of {world_size}."
            )
        return ctx
    dist.init_process_group(
        backend="nccl" if requested.type == "cuda" else "gloo",
        init_method="env://",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=timeout_s),
    )
    return ctx


def cleanup() -> None:
    """Leave the process group (no-op when there is none)."""
    if _is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here (no-op in a single process)."""
    if not _is_initialized():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place.

    Args:
        tensor: Any shape; on this rank's device (CPU for gloo, CUDA for nccl).

    Returns:
        The same tensor object, now holding the sum (unchanged in a single process).
    """
    if _is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over all ranks, as a new tensor (the input is left alone).

    Args:
        tensor: Any shape; integer tensors are averaged in the default float dtype.

    Returns:
        ``float[same shape]`` the element-wise mean over ranks (a copy in a single process).
    """
    out = tensor.detach().clone()
    if not out.is_floating_point():
        out = out.to(torch.get_default_dtype())
    if _is_initialized():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        out /= dist.get_world_size()
    return out


def broadcast_object(obj: Any, *, src: int = 0) -> Any:
    """Send a picklable Python object from rank ``src`` to every rank.

    Uses ``torch.distributed.broadcast_object_list`` (pickle between the job's own processes;
    nothing is read from disk). Returns ``obj`` unchanged in a single process.
    """
    if not _is_initialized():
        return obj
    box = [obj if dist.get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_ddp(
    model: nn.Module,
    ctx: DistributedContext,
    *,
    find_unused_parameters: bool = False,
    broadcast_buffers: bool = True,
) -> nn.Module:
    """Move ``model`` to ``ctx.device`` and wrap it in DistributedDataParallel when distributed.

    Args:
        model: The model (parameters are moved to ``ctx.device``).
        ctx: From :func:`init_distributed`.
        find_unused_parameters: Set True when some parameters get no gradient in some steps
            (e.g. per-dataset heads or branches skipped for some batches).
        broadcast_buffers: Sync buffers (e.g. BatchNorm statistics) from rank 0 every forward.

    Returns:
        ``model`` itself for world size 1, else the DDP wrapper (``.module`` is ``model``).
    """
    model = model.to(ctx.device)
    if not ctx.is_distributed:
        return model
    return DistributedDataParallel(
        model,
        device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters,
        broadcast_buffers=broadcast_buffers,
    )


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DDP / DataParallel / ``torch.compile`` wrappers (or ``model``)."""
    while True:
        if isinstance(model, (DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod  # torch.compile's OptimizedModule
        else:
            return model
