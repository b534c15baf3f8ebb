"""Batches of (index, weak view, label, strong view) for training and evaluation.

Two pipelines yield the same `Batch`es in the same order for a given seed and
epoch: `DeviceLoader` keeps the uint8 images on the training device and augments
whole batches there; `PILLoader` is the official-style per-image PIL path in
DataLoader workers, for datasets that do not fit in memory. The batch order is
a pure function of (seed, epoch), so a resumed run sees the same batches.
"""
import signal
from typing import NamedTuple, Optional

import numpy as np
import torch

from data_loader.augment import cutout, normalize, random_crop_flip
from data_loader.autoaugment import auto_augment_cifar10

CROP_PADDING = 4
CUTOUT_SIZE = 16


class Batch(NamedTuple):
    index: torch.Tensor                 # positions in the training set (rows of u/v)
    x: torch.Tensor                     # weak view (or the plain image for evaluation)
    y: torch.Tensor                     # given label
    x_strong: Optional[torch.Tensor]    # SOP+ strong view, None when not needed
    global_size: Optional[int] = None   # samples in the global batch this rank's share belongs to


def epoch_generator(seed, epoch):
    """A CPU generator that depends only on (seed, epoch)."""
    mixed = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed) & (2 ** 63 - 1))


def epoch_batches(num_samples, batch_size, generator=None, rank=0, world_size=1):
    """Index batches of one epoch; this rank's share of each global batch.

    Shuffled when a generator is given; then a trailing batch too small to give
    every rank two samples (BatchNorm cannot train on one) joins the batch before it."""
    return [shard(chunk, rank, world_size) for chunk in global_batches(num_samples, batch_size, generator, world_size)]


def global_batches(num_samples, batch_size, generator=None, world_size=1):
    """The epoch's global batches (every rank computes the same list). Every sample is in one:
    a training tail too small for `batch_count` is added to the last batch, so no label goes an
    epoch unseen (the noise monitor scores every sample from its logits of that epoch)."""
    order = torch.randperm(num_samples, generator=generator) if generator is not None else torch.arange(num_samples)
    count = batch_count(num_samples, batch_size, generator is not None, world_size)
    batches = [order[i * batch_size:(i + 1) * batch_size] for i in range(count)]
    if batches:
        batches[-1] = order[(count - 1) * batch_size:]
    return batches


def batch_count(num_samples, batch_size, train, world_size=1):
    """How many batches an epoch has: in training, a trailing batch too small to give every
    rank two samples (BatchNorm cannot train on one) is not a batch of its own."""
    full, tail = divmod(num_samples, batch_size)
    if tail and (not train or tail >= max(2, world_size * 2)):
        full += 1
    return full


def shard(batch, rank, world_size):
    """This rank's contiguous share of a global batch (tensor or list of tensors)."""
    if world_size == 1:
        return batch
    if isinstance(batch, torch.Tensor):
        return torch.tensor_split(batch, world_size)[rank]
    return [None if part is None else torch.tensor_split(part, world_size)[rank] for part in batch]


class DeviceLoader:
    """Images held once as uint8 (N, 3, H, W) on ``device``; batched augmentation there."""

    def __init__(self, images, labels, mean, std, batch_size, train, strong_view=False,
                 seed=0, device="cpu", rank=0, world_size=1):
        self.images = torch.as_tensor(images).permute(0, 3, 1, 2).contiguous().to(device)
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(device)
        self.mean, self.std = mean, std
        self.batch_size, self.train, self.strong_view = batch_size, train, strong_view
        self.seed, self.epoch = seed, 0
        self.rank, self.world_size = rank, world_size
        self.generator = None               # the current epoch's generator, while iterating
        self._start = (0, None)

    # a stop mid-epoch saves (steps done, generator.get_state()) and resumes bit-exactly from them
    exact_resume = True

    def set_epoch(self, epoch, start_step=0, generator_state=None):
        """The next iteration yields ``epoch`` from batch ``start_step`` on, with the epoch
        generator set to ``generator_state`` (its state after batch ``start_step - 1``)."""
        if start_step and generator_state is None:
            raise ValueError("starting an epoch after its first batch needs the generator state")
        self.epoch, self._start = epoch, (start_step, generator_state)

    def __len__(self):
        return batch_count(len(self.labels), self.batch_size, self.train, self.world_size)

    def __iter__(self):
        generator = epoch_generator(self.seed, self.epoch) if self.train else None
        self.generator = generator
        device = self.images.device
        batches = global_batches(len(self.labels), self.batch_size, generator, self.world_size)
        (start, state), self._start = self._start, (0, None)
        if start:  # the permutation above is regenerated; the draws of the done batches are skipped
            generator.set_state(state)
        for index in batches[start:]:
            if not self.train:
                index = shard(index, self.rank, self.world_size).to(device)
                if len(index):
                    yield Batch(index, normalize(self.images[index], self.mean, self.std), self.labels[index], None)
                continue
            # every rank augments the whole global batch with the same draws and keeps its share,
            # so K processes see exactly the images one process would (augmentation is launch-bound
            # on GPUs, so the extra rows cost little)
            index = index.to(device)
            images = self.images[index]
            weak = normalize(random_crop_flip(images, CROP_PADDING, generator), self.mean, self.std)
            strong = None
            if self.strong_view:
                strong = random_crop_flip(auto_augment_cifar10(images, generator), CROP_PADDING, generator)
                strong = cutout(normalize(strong, self.mean, self.std), CUTOUT_SIZE, generator)
            index, weak, strong = shard([index, weak, strong], self.rank, self.world_size)
            yield Batch(index, weak, self.labels[index], strong, len(images))


def _ignore_stop_signals(_worker_id):
    """Workers leave Ctrl-C / SIGTERM to the main process, which stops gracefully
    and shuts them down (a terminal's Ctrl-C reaches the whole process group)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class _IndexedImages(torch.utils.data.Dataset):
    def __init__(self, images, labels, transform, strong_transform):
        self.images, self.labels = images, labels
        self.transform, self.strong_transform = transform, strong_transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image
        image = Image.fromarray(self.images[i])
        strong = self.strong_transform(image) if self.strong_transform else torch.empty(0)
        return i, self.transform(image), int(self.labels[i]), strong


class PILLoader:
    """The official-style pipeline: PIL transforms per image in DataLoader workers."""

    def __init__(self, images, labels, mean, std, batch_size, train, strong_view=False,
                 seed=0, device="cpu", rank=0, world_size=1, num_workers=4):
        from data_loader.pil_transforms import strong_transform, test_transform, weak_transform
        transform = weak_transform(mean, std) if train else test_transform(mean, std)
        strong = strong_transform(mean, std) if (train and strong_view) else None
        self.dataset = _IndexedImages(images, np.asarray(labels), transform, strong)
        self.batch_size, self.train, self.strong_view = batch_size, train, strong_view
        self.seed, self.epoch, self.device = seed, 0, torch.device(device)
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return batch_count(len(self.dataset), self.batch_size, self.train, self.world_size)

    def __iter__(self):
        generator = epoch_generator(self.seed, self.epoch) if self.train else None
        chunks = global_batches(len(self.dataset), self.batch_size, generator, self.world_size)
        shares = [(shard(chunk, self.rank, self.world_size).tolist(), len(chunk)) for chunk in chunks]
        batches, sizes = [b for b, _ in shares if b], [n for b, n in shares if b]
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=batches, num_workers=self.num_workers,
            generator=epoch_generator(self.seed + 1, self.epoch), pin_memory=self.device.type == "cuda",
            persistent_workers=False, worker_init_fn=_ignore_stop_signals)
        for (index, x, y, strong), size in zip(loader, sizes):
            move = lambda t: t.to(self.device, non_blocking=True)  # noqa: E731
            yield Batch(move(index), move(x), move(y), move(strong) if self.strong_view and self.train else None,
                        size)
