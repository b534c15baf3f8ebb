"""Official-style per-image (PIL) transforms: reference path and for datasets not held on device."""
import torch
from torchvision import transforms as T


class Cutout:
    """Zero a ``size`` x ``size`` square (clipped) centred at a uniform random pixel of a CHW tensor.

    Rows/cols [c - size//2, c + size//2), like the official SOP Cutout.  Uses torch's global RNG so
    DataLoader worker seeding applies.
    """

    def __init__(self, size: int = 16):
        self.size = size

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        cy, cx = int(torch.randint(h, (1,))), int(torch.randint(w, (1,)))
        half = self.size // 2
        img = img.clone()
        img[..., max(cy - half, 0):max(cy + half, 0), max(cx - half, 0):max(cx + half, 0)] = 0
        return img

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(size={self.size})"


def weak_transform(mean, std):
    return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])


def strong_transform(mean, std):
    return T.Compose([
        T.AutoAugment(T.AutoAugmentPolicy.CIFAR10),
        T.RandomCrop(32, padding=4),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(mean, std),
        Cutout(16),
    ])


def test_transform(mean, std):
    return T.Compose([T.ToTensor(), T.Normalize(mean, std)])
test_transform.__test__ = False  # keep pytest from collecting it when imported into a test module
