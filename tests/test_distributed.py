"""Data-parallel SOP on CPU (gloo, 2 processes) equals one process with the global batch."""
import os

import torch

from model.loss import sop_loss
from model.sop_params import SampleNoiseParams
from tests.dist_helpers import run_workers
from utils.dist import all_gather_rows, differentiable_sum

N, C, STEPS, BATCH = 40, 5, 4, 12


def problem():
    """Fixed logits-producing linear model, data and batches shared by all runs."""
    g = torch.Generator().manual_seed(0)
    features = torch.randn(N, 6, generator=g)
    labels = torch.randint(0, C, (N,), generator=g)
    batches = [torch.randperm(N, generator=g)[:BATCH] for _ in range(STEPS)]
    return features, labels, batches


def train(rank, world_size, out_dir):
    features, labels, batches = problem()
    torch.manual_seed(0)
    model = torch.nn.Linear(6, C)
    params = SampleNoiseParams(N, C, lr_u=5.0, lr_v=9.0, init_std=0.1, generator=torch.Generator().manual_seed(1))
    if world_size > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for step, batch in enumerate(batches):
        index = torch.tensor_split(batch, world_size)[rank]
        share = len(index) * world_size / len(batch)
        logits = model(features[index])
        strong = model(features[index] + 0.1)
        u_rows, v_rows = params.rows(index)
        terms = sop_loss(logits, labels[index], u_rows, v_rows, strong, 0.9, 0.1, share=share,
                         batch_mean=lambda q: differentiable_sum(q.sum(dim=0)) / len(batch))
        optimizer.zero_grad()
        terms["loss"].backward()
        params.step(index, u_rows, v_rows)
        optimizer.step()
        torch.save({"u": params.u, "v": params.v}, os.path.join(out_dir, f"uv-{world_size}-{rank}-{step}.pt"))
    weights = (model.module if world_size > 1 else model).state_dict()
    torch.save(weights, os.path.join(out_dir, f"model-{world_size}-{rank}.pt"))


def gather_uneven(rank, world_size, out_dir):
    rows = torch.arange(rank + 1, dtype=torch.float32).unsqueeze(1) + 10 * rank   # 1 row on rank 0, 2 on rank 1
    index = torch.full((rank + 1,), rank)
    gathered_index, gathered_rows = all_gather_rows(index, rows)
    torch.save((gathered_index, gathered_rows), os.path.join(out_dir, f"gather-{rank}.pt"))


def test_all_gather_rows_handles_uneven_shards(tmp_path):
    run_workers(gather_uneven, 2, str(tmp_path))
    for rank in range(2):
        index, rows = torch.load(tmp_path / f"gather-{rank}.pt")
        assert index.tolist() == [0, 1, 1]
        assert rows.squeeze(1).tolist() == [0.0, 10.0, 11.0]


def test_two_processes_match_one_process_with_the_global_batch(tmp_path):
    train(0, 1, str(tmp_path))
    run_workers(train, 2, str(tmp_path))
    single = torch.load(tmp_path / "model-1-0.pt")
    for rank in range(2):
        for key, value in torch.load(tmp_path / f"model-2-{rank}.pt").items():
            torch.testing.assert_close(value, single[key], rtol=1e-5, atol=1e-6)
    for step in range(STEPS):
        reference = torch.load(tmp_path / f"uv-1-0-{step}.pt")
        rank0, rank1 = (torch.load(tmp_path / f"uv-2-{r}-{step}.pt") for r in range(2))
        assert torch.equal(rank0["u"], rank1["u"]) and torch.equal(rank0["v"], rank1["v"])   # identical on ranks
        torch.testing.assert_close(rank0["u"], reference["u"], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(rank0["v"], reference["v"], rtol=1e-5, atol=1e-7)
    initial = SampleNoiseParams(N, C, 5.0, 9.0, init_std=0.1, generator=torch.Generator().manual_seed(1))
    assert (reference["u"] != initial.u).sum() >= BATCH        # the steps really moved u


def batchnorm_step(rank, world_size, out_dir):
    from model.sync_batchnorm import convert_to_global_batchnorm
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4) * 2 + 1
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(16, 2))
    net = convert_to_global_batchnorm(net)
    out = net(torch.tensor_split(x, world_size)[rank])
    (out ** 2).sum().mul(world_size / 8).backward()   # each rank's share of the global mean
    grads = {name: p.grad.clone() for name, p in net.named_parameters()}
    if world_size > 1:
        for g in grads.values():
            torch.distributed.all_reduce(g)
            g /= world_size
    torch.save({"out": out.detach(), "grads": grads, "running": net[1].running_var.clone()},
               os.path.join(out_dir, f"bn-{world_size}-{rank}.pt"))


def test_global_batchnorm_matches_single_process_batchnorm(tmp_path):
    batchnorm_step(0, 1, str(tmp_path))         # single process: plain BatchNorm2d semantics
    run_workers(batchnorm_step, 2, str(tmp_path))
    single = torch.load(tmp_path / "bn-1-0.pt")
    halves = [torch.load(tmp_path / f"bn-2-{r}.pt") for r in range(2)]
    torch.testing.assert_close(torch.cat([h["out"] for h in halves]), single["out"], rtol=1e-4, atol=1e-5)
    for h in halves:
        torch.testing.assert_close(h["running"], single["running"], rtol=1e-5, atol=1e-6)
        for name, grad in single["grads"].items():
            torch.testing.assert_close(h["grads"][name], grad, rtol=1e-4, atol=1e-5)
