"""Per-sample AutoAugment (CIFAR-10 policy) on uint8 (B, 3, H, W) batches.

Follows torchvision's ``transforms.AutoAugment(AutoAugmentPolicy.CIFAR10)``
(policy table, 10 magnitude bins, random sign for signed ops, ``probs <= p``,
NEAREST interpolation, fill 0), but every sample draws its own sub-policy,
probabilities and signs.  Samples applying the same (op, signed magnitude) at
the same step are processed with one batched ``torchvision.transforms.v2``
functional call, so a batch costs a few dozen calls whatever its size.
"""
import math
from typing import Optional

import torch
import torchvision.transforms.v2.functional as TF

# Copied from torchvision.transforms.autoaugment.AutoAugment._get_policies(AutoAugmentPolicy.CIFAR10).
CIFAR10_POLICY = [
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
]


def augmentation_space(num_bins: int, image_size: tuple[int, int]) -> dict[str, tuple[torch.Tensor, bool]]:
    """op_name -> (magnitudes, signed); same as torchvision's AutoAugment._augmentation_space."""
    return {
        "ShearX": (torch.linspace(0.0, 0.3, num_bins), True),
        "ShearY": (torch.linspace(0.0, 0.3, num_bins), True),
        "TranslateX": (torch.linspace(0.0, 150.0 / 331.0 * image_size[1], num_bins), True),
        "TranslateY": (torch.linspace(0.0, 150.0 / 331.0 * image_size[0], num_bins), True),
        "Rotate": (torch.linspace(0.0, 30.0, num_bins), True),
        "Brightness": (torch.linspace(0.0, 0.9, num_bins), True),
        "Color": (torch.linspace(0.0, 0.9, num_bins), True),
        "Contrast": (torch.linspace(0.0, 0.9, num_bins), True),
        "Sharpness": (torch.linspace(0.0, 0.9, num_bins), True),
        "Posterize": (8 - (torch.arange(num_bins) / ((num_bins - 1) / 4)).round().int(), False),
        "Solarize": (torch.linspace(255.0, 0.0, num_bins), False),
        "AutoContrast": (torch.tensor(0.0), False),
        "Equalize": (torch.tensor(0.0), False),
        "Invert": (torch.tensor(0.0), False),
    }


def apply_op(x: torch.Tensor, op_name: str, magnitude: float, fill: Optional[list[float]] = None) -> torch.Tensor:
    """One AutoAugment op on a uint8 batch (..., C, H, W); mirrors torchvision's ``_apply_op``."""
    nearest = TF.InterpolationMode.NEAREST
    if op_name in ("ShearX", "ShearY"):
        shear = math.degrees(math.atan(magnitude))
        shear = [shear, 0.0] if op_name == "ShearX" else [0.0, shear]
        return TF.affine(x, angle=0.0, translate=[0, 0], scale=1.0, shear=shear,
                         interpolation=nearest, fill=fill, center=[0, 0])
    if op_name in ("TranslateX", "TranslateY"):
        t = [int(magnitude), 0] if op_name == "TranslateX" else [0, int(magnitude)]
        return TF.affine(x, angle=0.0, translate=t, scale=1.0, shear=[0.0, 0.0], interpolation=nearest, fill=fill)
    if op_name == "Rotate":
        return TF.rotate(x, magnitude, interpolation=nearest, fill=fill)
    if op_name == "Brightness":
        return TF.adjust_brightness(x, 1.0 + magnitude)
    if op_name == "Color":
        return TF.adjust_saturation(x, 1.0 + magnitude)
    if op_name == "Contrast":
        return TF.adjust_contrast(x, 1.0 + magnitude)
    if op_name == "Sharpness":
        return TF.adjust_sharpness(x, 1.0 + magnitude)
    if op_name == "Posterize":
        return TF.posterize(x, int(magnitude))
    if op_name == "Solarize":
        return TF.solarize(x, magnitude)
    if op_name == "AutoContrast":
        return TF.autocontrast(x)
    if op_name == "Equalize":
        return TF.equalize(x)
    if op_name == "Invert":
        return TF.invert(x)
    if op_name == "Identity":
        return x
    raise ValueError(f"The provided operator {op_name} is not recognized.")


def sample_ops(batch_size: int, generator: torch.Generator, image_size=(32, 32), policy=CIFAR10_POLICY):
    """Draw per-sample AutoAugment decisions.

    Returns a list with one entry per step (2): a dict ``(op_name, signed_magnitude) -> LongTensor`` of the
    (CPU) sample indices that apply that op at that step.  Random numbers are drawn on ``generator.device``.
    """
    dev = generator.device
    pid = torch.randint(len(policy), (batch_size,), generator=generator, device=dev).cpu()
    probs = torch.rand((batch_size, 2), generator=generator, device=dev).cpu()
    signs = torch.randint(2, (batch_size, 2), generator=generator, device=dev).cpu()
    space = augmentation_space(10, image_size)
    steps = []
    for i in range(2):
        groups = {}
        for k, sub in enumerate(policy):
            op_name, p, mag_id = sub[i]
            applied = (pid == k) & (probs[:, i] <= p)
            mags, signed = space[op_name]
            mag = float(mags[mag_id].item()) if mag_id is not None else 0.0
            for s in ((0, 1) if signed else (None,)):  # torchvision: sign draw 0 -> negative magnitude
                idx = (applied if s is None else applied & (signs[:, i] == s)).nonzero().squeeze(1)
                if len(idx):
                    key = (op_name, -mag if s == 0 else mag)
                    groups[key] = torch.cat([groups[key], idx]) if key in groups else idx
        steps.append(groups)
    return steps


def auto_augment_cifar10(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-sample AutoAugment with the CIFAR-10 policy on a uint8 (B, 3, H, W) batch; returns uint8 (B, 3, H, W)."""
    if x.dtype != torch.uint8:
        raise TypeError("auto_augment_cifar10 expects a uint8 batch")
    out = x.clone()
    for groups in sample_ops(x.shape[0], generator, tuple(x.shape[-2:])):
        for (op_name, mag), idx in groups.items():
            idx = idx.to(x.device)
            out[idx] = apply_op(out[idx], op_name, mag)
    return out
