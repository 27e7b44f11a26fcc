"""Process-group helpers: rank, world size, init under torchrun, gradient averaging.

Everything is a no-op in a single process, so single-process runs need no process group.
Under `torchrun`, `init()` joins the group (NCCL on GPUs, gloo on CPU) from the environment
variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT), which is also how
multi-node runs rendezvous.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init(device_type: str) -> None:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); else do nothing."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_initialized():
        return
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)


def shutdown() -> None:
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s parameters and buffers to every rank
    (docs/training.md#initialisation-and-seeds)."""
    if not is_initialized():
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=src)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """In-place mean over ranks (identity in one process)."""
    if is_initialized():
        dist.all_reduce(tensor)
        tensor /= world_size()
    return tensor


def sync_gradients(params: Iterable[torch.nn.Parameter], scale: float = 1.0) -> torch.Tensor:
    """Average gradients over ranks, multiply by `scale`, and replace non-finite values
    (nan -> 0, +-inf -> +-1e5) as the original does (docs/training.md#gradient-handling).
    Returns how many gradient elements were non-finite, as a 0-dim tensor on the gradients'
    device: nothing here waits for the device (docs/training.md#no-waiting-inside-a-step)."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return torch.zeros((), dtype=torch.int64)
    flat = torch.cat([p.grad.flatten() for p in params])
    all_reduce_mean(flat)
    flat *= scale
    bad = (~torch.isfinite(flat)).sum()
    torch.nan_to_num_(flat, nan=0.0, posinf=1e5, neginf=-1e5)  # identity on finite values
    pieces = flat.split([p.numel() for p in params])
    torch._foreach_copy_([p.grad for p in params], [x.view_as(p) for x, p in zip(pieces, params)])
    return bad
