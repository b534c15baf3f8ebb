"""Run a function in K CPU processes joined by a gloo process group."""
import os
import socket

import torch.distributed as dist
import torch.multiprocessing as mp

from utils.dist import shutdown_distributed


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank, fn, world_size, port, args):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        fn(rank, world_size, *args)
        dist.barrier()
    finally:
        shutdown_distributed()


def run_workers(fn, world_size, *args):
    """fn(rank, world_size, *args) in each process; fn must be importable."""
    mp.spawn(_entry, args=(fn, world_size, free_port(), args), nprocs=world_size, join=True)
