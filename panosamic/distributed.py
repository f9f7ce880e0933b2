"""Multi-process helpers: torchrun / spawned DDP set-up and samplers that never pad.

Training and evaluation run either in one process or in ``WORLD_SIZE`` processes started by
``torchrun`` (env ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) or by
:func:`spawn` (``--num_gpus N`` without torchrun). The backend is NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from panosamic import runs

__all__ = [
    "DistContext",
    "GlobalBatchSampler",
    "ShardSampler",
    "all_reduce_sum",
    "cleanup_distributed",
    "free_port",
    "init_distributed",
    "resolve_device",
    "spawn",
    "wrap_ddp",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among ``world_size`` and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


#: What ``--device`` accepts (``cuda:N`` picks one GPU).
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(device: str | torch.device | None, local_rank: int | None = None) -> torch.device:
    """The one device resolver: ``"auto"``/``None`` is CUDA (this rank's GPU) when available, else the
    CPU; ``cpu``, ``cuda[:N]`` and ``mps`` are checked to exist (one line naming ``--device`` otherwise).

    ``local_rank`` (default: torchrun's ``LOCAL_RANK``) picks the GPU when ``cuda`` has no index.
    """
    if device is None or str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device must be one of {DEVICE_CHOICES}, got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device} requested but CUDA is not available; use --device cpu")
        if dev.index is None:
            rank = int(os.environ.get("LOCAL_RANK", "0")) if local_rank is None else local_rank
            dev = torch.device("cuda", rank % torch.cuda.device_count())
        elif dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        torch.cuda.set_device(dev)
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"--device {device} requested but MPS is not available; use --device cpu")
    elif dev.type != "cpu":
        raise ValueError(f"--device must be one of {DEVICE_CHOICES}, got {device!r}")
    return dev


def init_distributed(device: str | None = None) -> DistContext:
    """Join the process group described by torchrun's environment (single process without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """In-place sum over ranks (no-op in a single process); returns ``t``."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]
    return obj


def new_run_dir_on_main(ctx: DistContext, experiments: str | os.PathLike, dataset: str, exp_id: str) -> Path:
    """A new run folder, made by the main process and broadcast to every rank."""
    run_dir = runs.new_run_dir(experiments, dataset, exp_id) if ctx.is_main else None
    return Path(broadcast_object(str(run_dir) if run_dir else None))


def wrap_ddp(module: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """``module`` wrapped in DistributedDataParallel under several processes, else itself."""
    if not ctx.distributed:
        return module
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawned(local_rank: int, world_size: int, port: int, fn: Callable[..., Any], args: tuple) -> None:
    os.environ.update(
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR=os.environ.get("MASTER_ADDR", "127.0.0.1"),
        MASTER_PORT=str(port),
    )
    fn(*args)


def spawn(fn: Callable[..., Any], world_size: int, args: tuple = ()) -> None:
    """Run ``fn(*args)`` in ``world_size`` fresh processes set up like torchrun's (one machine)."""
    import torch.multiprocessing as mp

    port = int(os.environ.get("MASTER_PORT", "0")) or free_port()
    mp.spawn(_spawned, args=(world_size, port, fn, args), nprocs=world_size, join=True)


# ---------------------------------------------------------------------------- samplers
class ShardSampler(Sampler[int]):
    """Evaluation sampler: rank ``r`` gets indices ``r, r + W, r + 2W, ...`` in order.

    Unlike ``DistributedSampler`` it never pads with duplicates, so summing the ranks'
    confusion matrices counts every sample exactly once.
    """

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, num_samples, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class GlobalBatchSampler(Sampler[list[int]]):
    """Training batches: one seeded permutation per epoch, cut into global batches of
    ``batch_size x world_size`` (the incomplete last one dropped), rank ``r`` taking its slice.

    The same seed, epoch and global batch give the same samples per optimiser step whatever
    the number of processes (so 2 x 1 and 1 x 2 train on identical batches). ``skip`` batches
    can be left out at the start (exact mid-epoch resume).
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        limit_batches: int | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.shuffle = shuffle
        self.limit_batches = limit_batches
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch = epoch
        self.skip = skip

    @property
    def batches_per_epoch(self) -> int:
        """Global batches of a whole epoch (``len(sampler)`` is what is left after ``skip``)."""
        n = self.num_samples // (self.batch_size * self.world_size)
        return n if self.limit_batches is None else min(n, self.limit_batches)

    def batches(self) -> Sequence[list[int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.num_samples, generator=g).tolist()
        else:
            order = list(range(self.num_samples))
        g_b = self.batch_size * self.world_size
        out = []
        for j in range(self.batches_per_epoch):
            start = j * g_b + self.rank * self.batch_size
            out.append(order[start : start + self.batch_size])
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches()[self.skip :])

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.skip)
