"""Data-parallel training across processes: the process group that `torchrun` sets up, and its helpers.

`torchrun --nproc_per_node=W` starts W processes and tells each, through the environment, its RANK
(0..W-1), its LOCAL_RANK on this machine and the WORLD_SIZE W. Without those variables the run is a single
process and every helper here is the identity (no process group, no wrapper, the whole batch). A process
joins the group at its first training run (`init`) and leaves it once, at its end (`destroy`).

Glossary: W world size (processes), B the global batch (rows drawn by every rank alike), B / W the rows one
rank trains on, T tokens. DistributedDataParallel averages the W ranks' gradients in backward, so W ranks
each on B / W rows take the same step as one process on B rows (up to float rounding of the sums).
Backends: gloo on the CPU, nccl on GPUs (rank r on GPU LOCAL_RANK).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise ValueError(f"environment variable {name}={value!r} must be an int >= 0 (torchrun sets it)")
    return int(value)


def launched() -> bool:
    """True in a process started by torchrun (WORLD_SIZE is set), even with a world of one."""
    return "WORLD_SIZE" in os.environ


def world_size() -> int:
    """W, the number of processes (1 outside torchrun)."""
    return _env_int("WORLD_SIZE", 1)


def rank() -> int:
    return _env_int("RANK", 0)


def is_main() -> bool:
    """True on rank 0, the process that shows progress, evaluates and writes files."""
    return rank() == 0


def rank_device(device: torch.device) -> torch.device:
    """The device this rank computes on: GPU LOCAL_RANK for a cuda run under torchrun, else `device`."""
    if device.type != "cuda" or not launched():
        return device
    local = torch.device("cuda", _env_int("LOCAL_RANK", 0))
    torch.cuda.set_device(local)
    return local


def init(device: torch.device) -> None:
    """Joins the torchrun process group (gloo for the CPU, nccl for cuda) unless already joined; a no-op
    outside torchrun. The group then serves every later training run of this process, since leaving and
    joining again on the same MASTER_PORT can pair a rank with the previous group's rendezvous."""
    if launched() and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def destroy() -> None:
    """Leaves the process group after a barrier (so no rank tears it down under another's last message);
    what a torchrun entry point calls once at its end."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model in DistributedDataParallel under torchrun (rank 0's weights broadcast to every rank), else
    the model itself. Call it after the model has moved to its rank's device."""
    if not launched():
        return model
    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def check_batch(name: str, batch_size: int) -> None:
    """The global batch must split into W equal shards, so that every rank weighs alike."""
    world = world_size()
    if batch_size % world:
        raise ValueError(f"{name}={batch_size} (the global batch) must be a multiple of the {world} "
                         f"processes; pick a batch size divisible by {world} or another --nproc_per_node")


def shard(batch: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous block of rows of a global batch (B, ...) -> (B / W, ...); B divides by W."""
    rows = batch.shape[0] // world_size()
    return batch[rank() * rows:(rank() + 1) * rows]


def mean(value: torch.Tensor) -> float:
    """The mean of a scalar over the ranks (the value itself in a single process)."""
    if not launched():
        return value.item()
    total = value.detach().clone()
    dist.all_reduce(total)
    return total.item() / world_size()


def from_main(value: float | None, device: torch.device) -> float:
    """Rank 0's `value` on every rank (a float rank 0 computed while the others waited here)."""
    if not launched():
        return value
    box = torch.tensor([value if is_main() else 0.0], dtype=torch.float64, device=device)
    dist.broadcast(box, src=0)
    return box.item()
