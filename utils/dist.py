"""torch.distributed helpers: process-group setup from torchrun's environment,
and the collectives SOP needs (row gathers for u/v, sums of metrics).

Without torchrun (no RANK / WORLD_SIZE in the environment) everything is a
single process and these helpers are no-ops.
"""
import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self):
        return self.world_size > 1

    @property
    def is_main(self):
        return self.rank == 0


def init_distributed():
    """Join the process group torchrun describes (NCCL on CUDA, else gloo)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if info.world_size > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return info


def shutdown_distributed():
    if dist.is_available() and dist.is_initialized():
        # DDP's reducer can sit in a reference cycle that outlives the process
        # group; gloo then tears down its threads during interpreter exit and
        # aborts (SIGABRT, "terminate called without an active exception").
        gc.collect()
        dist.destroy_process_group()


def active():
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_gather_rows(*tensors):
    """Concatenate each tensor's rows over all ranks (rank order); row counts may
    differ between ranks. Returns the tensors unchanged in a single process."""
    if not active():
        return tensors
    world = dist.get_world_size()
    device = tensors[0].device
    count = torch.tensor([tensors[0].shape[0]], device=device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    counts = [int(c) for c in counts]
    longest = max(counts)
    gathered = []
    for tensor in tensors:
        padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=device)
        padded[:tensor.shape[0]] = tensor
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        gathered.append(torch.cat([part[:n] for part, n in zip(parts, counts)]))
    return tuple(gathered)


def _all_reduced(tensor, op=dist.ReduceOp.SUM):
    total = tensor.clone()
    dist.all_reduce(total, op=op)
    return total


def sum_across_ranks(tensor):
    """Element-wise sum over ranks (a new tensor; identity in a single process)."""
    return _all_reduced(tensor) if active() else tensor


def max_across_ranks(tensor):
    """Element-wise maximum over ranks (a new tensor; identity in a single process)."""
    return _all_reduced(tensor, dist.ReduceOp.MAX) if active() else tensor


def broadcast_buffers(module):
    """Copy rank 0's buffers (e.g. BatchNorm running statistics) to every rank."""
    if active():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose backward is again an all-reduce of the gradients:
    d(sum_r x_r)/dx_r is one for every rank's loss, and every rank has a loss."""

    @staticmethod
    def forward(ctx, tensor):
        return _all_reduced(tensor)

    @staticmethod
    def backward(ctx, grad):
        return _all_reduced(grad)


def differentiable_sum(tensor):
    """Sum over ranks that gradients flow back through (for the balance term)."""
    if not active():
        return tensor
    return _SumOverRanks.apply(tensor)


def broadcast_object(value):
    """Rank 0's value on every rank (e.g. the run directory name)."""
    if not active():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
