"""Batched, device-agnostic image augmentation on (B, C, H, W) tensors.

Randomness always comes from an explicit ``torch.Generator``.  Parameters are
drawn on the generator's device and moved to the data's device, so one CPU
generator can drive augmentation of CUDA batches.
"""
from typing import Sequence

import torch
import torch.nn.functional as F


def _randint(high: int, size, generator: torch.Generator, device) -> torch.Tensor:
    return torch.randint(high, size, generator=generator, device=generator.device).to(device)


def random_crop_flip(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding ``padding``) to the input size + horizontal flip (p=0.5), per sample."""
    B, C, H, W = x.shape
    offs = _randint(2 * padding + 1, (B, 2), generator, x.device)
    flip = _randint(2, (B,), generator, x.device).bool()
    padded = F.pad(x, (padding, padding, padding, padding))  # zeros, works for uint8 and float
    rows = offs[:, :1] + torch.arange(H, device=x.device)  # (B, H) rows of the padded image
    cols = torch.arange(W, device=x.device).expand(B, W)
    cols = torch.where(flip[:, None], W - 1 - cols, cols) + offs[:, 1:]  # (B, W), reversed when flipped
    idx = (rows[:, :, None] * (W + 2 * padding) + cols[:, None, :]).view(B, 1, H * W).expand(B, C, H * W)
    return padded.view(B, C, -1).gather(2, idx).view(B, C, H, W)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (..., C, H, W) in [0, 255] -> float32 ``(x / 255 - mean) / std`` (mean/std in [0, 1] scale)."""
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    return x.to(torch.float32, copy=True).div_(255.0).sub_(mean_t).div_(std_t)  # in place: no temporaries


def cutout_mask(centers: torch.Tensor, size: int, H: int, W: int) -> torch.Tensor:
    """Bool (B, H, W) mask, True inside rows [cy - size//2, cy + size//2) x same for columns (clipped)."""
    half = size // 2
    r = torch.arange(H, device=centers.device)
    c = torch.arange(W, device=centers.device)
    cy, cx = centers[:, 0:1], centers[:, 1:2]
    in_r = (r >= cy - half) & (r < cy + half)  # (B, H)
    in_c = (c >= cx - half) & (c < cx + half)  # (B, W)
    return in_r[:, :, None] & in_c[:, None, :]


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square (clipped at the border) centred at a uniform random pixel, per sample.

    Same geometry as the official SOP/DeVries Cutout: rows [cy - size//2, cy + size//2).
    """
    B, C, H, W = x.shape
    cy = _randint(H, (B,), generator, x.device)
    cx = _randint(W, (B,), generator, x.device)
    mask = cutout_mask(torch.stack([cy, cx], 1), size, H, W)
    return x.masked_fill(mask[:, None], 0)


def weak_augment(x: torch.Tensor, mean, std, generator: torch.Generator) -> torch.Tensor:
    """uint8 batch -> crop(pad 4) + flip -> normalised float32."""
    return normalize(random_crop_flip(x, 4, generator), mean, std)


def strong_augment(x: torch.Tensor, mean, std, generator: torch.Generator) -> torch.Tensor:
    """uint8 batch -> AutoAugment(CIFAR-10) -> crop(pad 4) + flip -> normalise -> Cutout(16)."""
    from .autoaugment import auto_augment_cifar10

    x = random_crop_flip(auto_augment_cifar10(x, generator), 4, generator)
    return cutout(normalize(x, mean, std), 16, generator)
