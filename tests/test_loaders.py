"""DeviceLoader / PILLoader: every index once per epoch, rank sharding, identical order across pipelines."""
import numpy as np
import pytest
import torch

from data_loader.loaders import DeviceLoader, PILLoader, epoch_batches, epoch_generator, global_batches

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def fake(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def make(cls, n=50, batch_size=16, train=True, strong=False, seed=7, rank=0, world_size=1):
    images, labels = fake(n)
    extra = {"num_workers": 0} if cls is PILLoader else {}
    return cls(images, labels, MEAN, STD, batch_size, train, strong_view=strong, seed=seed,
               rank=rank, world_size=world_size, **extra)


@pytest.mark.parametrize("cls", [DeviceLoader, PILLoader])
def test_train_epoch_yields_every_index_once(cls):
    loader = make(cls, n=50, batch_size=16, strong=True)  # 16 + 16 + 16 + 2
    labels = fake(50)[1]
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        batches = list(loader)
        assert [len(b.index) for b in batches] == [16, 16, 16, 2] and len(loader) == 4
        seen = torch.cat([b.index for b in batches])
        assert sorted(seen.tolist()) == list(range(50))
        assert seen.tolist() != list(range(50))  # shuffled
        for b in batches:
            assert b.x.shape == (len(b.index), 3, 32, 32) and b.x.dtype == torch.float32
            assert b.x_strong.shape == b.x.shape
            assert torch.equal(b.y, torch.as_tensor(labels[b.index.numpy()]))


@pytest.mark.parametrize("cls", [DeviceLoader, PILLoader])
def test_single_sample_tail_joins_the_last_training_batch(cls):
    train = list(make(cls, n=49, batch_size=16))
    assert [len(b.index) for b in train] == [16, 16, 17]
    assert sorted(torch.cat([b.index for b in train]).tolist()) == list(range(49))   # every label seen
    evaluation = list(make(cls, n=49, batch_size=16, train=False))
    assert torch.equal(torch.cat([b.index for b in evaluation]), torch.arange(49))  # in order, nothing dropped
    assert all(b.x_strong is None for b in evaluation)


def test_same_order_for_both_pipelines():
    for epoch in (0, 3):
        orders = []
        for cls in (DeviceLoader, PILLoader):
            loader = make(cls, n=40, batch_size=8)
            loader.set_epoch(epoch)
            orders.append([(b.index.tolist(), b.y.tolist()) for b in loader])
        assert orders[0] == orders[1]
    again = make(DeviceLoader, n=40, batch_size=8)
    first = [b.index.tolist() for b in again]
    assert first == [b.index.tolist() for b in again]  # same (seed, epoch) -> same batches
    again.set_epoch(1)
    assert first != [b.index.tolist() for b in again]


def test_eval_views_match_between_pipelines():
    device, pil = (list(make(cls, n=20, batch_size=8, train=False)) for cls in (DeviceLoader, PILLoader))
    for a, b in zip(device, pil):
        torch.testing.assert_close(a.x, b.x, rtol=0, atol=1e-5)  # ToTensor + Normalize == batched normalize


@pytest.mark.parametrize("n,batch_size,world_size", [(100, 32, 2), (103, 20, 3), (64, 64, 4)])
def test_rank_shards_partition_each_global_batch(n, batch_size, world_size):
    whole = global_batches(n, batch_size, epoch_generator(5, 2), world_size)
    shards = [epoch_batches(n, batch_size, epoch_generator(5, 2), rank, world_size) for rank in range(world_size)]
    kept = len(shards[0])
    assert all(len(s) == kept for s in shards) and kept == len(whole)
    # a trailing global batch too small to give every rank two samples (BatchNorm) joins the one before
    assert kept == n // batch_size + (n % batch_size >= 2 * world_size)
    for step, batch in enumerate(whole):
        parts = [s[step].tolist() for s in shards]
        assert sum(map(len, parts)) == len(batch)
        assert sorted(sum(parts, [])) == sorted(batch.tolist())  # disjoint and covering
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("cls", [DeviceLoader, PILLoader])
def test_loader_rank_sharding(cls):
    per_rank = [[b.index for b in make(cls, n=50, batch_size=16, rank=r, world_size=2)] for r in range(2)]
    whole = [b.index for b in make(cls, n=50, batch_size=16)]
    # one process has a tail batch of 2; two ranks would get one sample each, so it joins the last batch
    assert [len(b) for b in whole] == [16, 16, 16, 2] and [len(b) for b in per_rank[1]] == [8, 8, 9]
    whole = whole[:2] + [torch.cat(whole[2:])]
    for step, batch in enumerate(whole):
        a, b = per_rank[0][step].tolist(), per_rank[1][step].tolist()
        assert not set(a) & set(b) and sorted(a + b) == sorted(batch.tolist())


def test_pil_loader_with_workers_matches_in_process():
    images, labels = fake(24)
    runs = [list(PILLoader(images, labels, MEAN, STD, 8, True, strong_view=True, seed=1, num_workers=w))
            for w in (0, 2)]
    for a, b in zip(*runs):
        assert torch.equal(a.index, b.index) and torch.equal(a.y, b.y)
        assert a.x_strong.shape == b.x_strong.shape == (8, 3, 32, 32)


def test_training_folds_a_trailing_batch_too_small_for_two_samples_per_rank_into_the_last():
    # (samples, batch, ranks) -> sizes of the training batches; evaluation keeps every tail apart
    cases = {(300, 64, 1): [64] * 4 + [44], (257, 64, 1): [64] * 3 + [65], (258, 64, 1): [64] * 4 + [2],
             (259, 64, 2): [64] * 3 + [67], (260, 64, 2): [64] * 4 + [4], (128, 128, 1): [128]}
    for (n, size, world), expected in cases.items():
        batches = global_batches(n, size, torch.Generator().manual_seed(0), world)
        assert [len(b) for b in batches] == expected, (n, size, world)
        assert sorted(torch.cat(batches).tolist()) == list(range(n))   # each sample exactly once
        evaluation = global_batches(n, size, None, world)
        assert len(evaluation) == -(-n // size) and torch.equal(torch.cat(evaluation), torch.arange(n))
