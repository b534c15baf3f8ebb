import pytest
import torch

from data_loader import pil_transforms as pt
from data_loader.augment import cutout, cutout_mask, normalize, random_crop_flip, strong_augment, weak_augment

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def candidates(img, p=4):
    """All (2p+1)^2 crops of the zero-padded image, each also flipped."""
    H, W = img.shape[-2:]
    padded = torch.nn.functional.pad(img, (p, p, p, p))
    crops = [padded[:, i:i + H, j:j + W] for i in range(2 * p + 1) for j in range(2 * p + 1)]
    return crops + [c.flip(-1) for c in crops]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_crop_flip_is_shifted_window(dtype):
    x = torch.randint(1, 256, (6, 3, 32, 32), generator=gen(0)).to(dtype)
    y = random_crop_flip(x, 4, gen(1))
    assert y.shape == x.shape and y.dtype == dtype
    for i in range(len(x)):
        cands = candidates(x[i])
        assert len(cands) == 162
        assert sum(torch.equal(y[i], c) for c in cands) == 1


def test_crop_flip_determinism():
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=gen(0))
    assert torch.equal(random_crop_flip(x, 4, gen(5)), random_crop_flip(x, 4, gen(5)))
    assert not torch.equal(random_crop_flip(x, 4, gen(5)), random_crop_flip(x, 4, gen(6)))


def test_crop_flip_covers_offsets_and_flip_rate():
    B = 4000
    r = torch.arange(1, 33, dtype=torch.uint8)
    x = torch.stack([r[:, None].expand(32, 32), r[None, :].expand(32, 32), r[None, :].expand(32, 32)])
    y = random_crop_flip(x.expand(B, 3, 32, 32), 4, gen(0)).long()
    oy = y[:, 0, 16, 16] - 13  # output row 16 reads input row 16 + oy - 4 (value = row + 1)
    flip = y[:, 1, 16, 17] < y[:, 1, 16, 16]
    ox = torch.where(flip, y[:, 1, 16, 16] - 12, y[:, 1, 16, 16] - 13)
    assert set(oy.tolist()) == set(range(9)) and set(ox.tolist()) == set(range(9))
    assert abs(flip.float().mean().item() - 0.5) < 0.05
    assert abs((oy == 0).float().mean().item() - 1 / 9) < 0.03


def test_normalize_values():
    x = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 3, 1, 1)
    y = normalize(x, (0.5, 0.5, 0.2), (0.5, 0.25, 0.1))
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.flatten(), torch.tensor([-1.0, 2.0, 0.0]))


@pytest.mark.parametrize("centre,rows,cols", [((0, 0), (0, 8), (0, 8)), ((31, 31), (23, 32), (23, 32)),
                                              ((16, 5), (8, 24), (0, 13)), ((10, 20), (2, 18), (12, 28))])
def test_cutout_mask_hand_computed(centre, rows, cols):
    m = cutout_mask(torch.tensor([centre]), 16, 32, 32)[0]
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[rows[0]:rows[1], cols[0]:cols[1]] = True
    assert torch.equal(m, expected)


def find_centre(zero_mask, size=16):
    """The centre whose clipped cutout square equals zero_mask (None if none does)."""
    H, W = zero_mask.shape
    cs = torch.cartesian_prod(torch.arange(H), torch.arange(W))
    hits = (cutout_mask(cs, size, H, W) == zero_mask).flatten(1).all(1).nonzero()
    return tuple(cs[hits[0, 0]].tolist()) if len(hits) else None


def test_cutout_batch():
    x = torch.ones(64, 3, 32, 32)
    y = cutout(x, 16, gen(0))
    assert y.shape == x.shape and y.dtype == x.dtype and torch.equal(x, torch.ones_like(x))
    zero = y == 0
    assert torch.equal(zero, zero[:, :1].expand_as(zero))  # all channels
    centres = [find_centre(zero[i, 0]) for i in range(len(y))]
    assert None not in centres and len(set(centres)) > 50
    assert torch.equal(cutout(x, 16, gen(0)), y) and not torch.equal(cutout(x, 16, gen(1)), y)


def test_batched_pipelines():
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=gen(0))
    for f in (weak_augment, strong_augment):
        y = f(x, MEAN, STD, gen(1))
        assert y.shape == x.shape and y.dtype == torch.float32
        assert torch.equal(y, f(x, MEAN, STD, gen(1)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_generator_cuda_data():
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=gen(0))
    assert torch.equal(weak_augment(x.cuda(), MEAN, STD, gen(1)).cpu(), weak_augment(x, MEAN, STD, gen(1)))
    y_cpu = strong_augment(x, MEAN, STD, gen(1))
    y_gpu = strong_augment(x.cuda(), MEAN, STD, gen(1))
    assert y_gpu.device.type == "cuda"
    # same random draws; CUDA kernels may round a few pixels differently
    assert ((y_gpu.cpu() - y_cpu).abs() > 0.05).float().mean() < 0.01


def test_pil_transforms():
    from PIL import Image

    img = Image.fromarray(torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8, generator=gen(0)).numpy())
    for t in (pt.weak_transform(MEAN, STD), pt.strong_transform(MEAN, STD), pt.test_transform(MEAN, STD)):
        y = t(img)
        assert y.shape == (3, 32, 32) and y.dtype == torch.float32


def test_pil_cutout_square():
    x = torch.ones(3, 32, 32)
    for seed in range(40):
        torch.manual_seed(seed)
        cy, cx = int(torch.randint(32, (1,))), int(torch.randint(32, (1,)))
        torch.manual_seed(seed)
        y = pt.Cutout(16)(x)
        expected = cutout_mask(torch.tensor([[cy, cx]]), 16, 32, 32)[0]
        assert torch.equal(y == 0, expected.expand(3, 32, 32))
    assert torch.equal(x, torch.ones_like(x))
