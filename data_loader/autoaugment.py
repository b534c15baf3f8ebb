"""Per-sample AutoAugment (CIFAR-10 policy) on uint8 (B, 3, H, W) batches.

Follows torchvision's ``transforms.AutoAugment(AutoAugmentPolicy.CIFAR10)``
(policy table, 10 magnitude bins, random sign for signed ops, ``probs <= p``,
NEAREST interpolation, fill 0), but every sample draws its own sub-policy,
probabilities and signs.  Each step costs one call per op *kind*, whatever the
batch size: colour ops take per-sample factors (the same float32 arithmetic as
torchvision's scalar kernels, so results are bit-identical), and all geometric
ops of a step are one gather through per-(op, magnitude) index maps made by
running torchvision's own nearest-neighbour affine on an image of pixel indices.
"""
import math
from functools import lru_cache
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


GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
KINDS = ("Geometric", "Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize",
         "AutoContrast", "Equalize", "Invert")


@lru_cache(maxsize=None)
def policy_tables(image_size: tuple[int, int], policy: tuple = tuple(CIFAR10_POLICY)):
    """keys: the (op_name, signed magnitude)s the policy can apply; key_of[sub_policy, step, sign draw] -> key id;
    prob[sub_policy, step] (float32, compared with float32 draws as torchvision's ``probs <= p`` does)."""
    space = augmentation_space(10, image_size)
    key_id: dict = {}
    key_of = torch.empty(len(policy), 2, 2, dtype=torch.long)
    prob = torch.empty(len(policy), 2)
    for k, sub in enumerate(policy):
        for i, (op_name, p, mag_id) in enumerate(sub):
            mags, signed = space[op_name]
            mag = float(mags[mag_id].item()) if mag_id is not None else 0.0
            prob[k, i] = p
            for s in (0, 1):  # torchvision: sign draw 0 -> negative magnitude
                key = (op_name, -mag if signed and s == 0 else mag)
                key_of[k, i, s] = key_id.setdefault(key, len(key_id))
    return list(key_id), key_of, prob


def sample_keys(batch_size: int, generator: torch.Generator, image_size=(32, 32), policy=CIFAR10_POLICY):
    """(2, batch_size) CPU key ids into ``policy_tables(...)[0]`` per step and sample; -1 = no op."""
    dev = generator.device
    pid = torch.randint(len(policy), (batch_size,), generator=generator, device=dev).cpu()
    probs = torch.rand((batch_size, 2), generator=generator, device=dev).cpu()
    signs = torch.randint(2, (batch_size, 2), generator=generator, device=dev).cpu()
    _, key_of, prob = policy_tables(tuple(image_size), tuple(policy))
    steps = torch.arange(2)
    keys = key_of[pid[:, None], steps, signs]                        # (B, 2)
    return torch.where(probs <= prob[pid], keys, -1).T


def sample_ops(batch_size: int, generator: torch.Generator, image_size=(32, 32), policy=CIFAR10_POLICY):
    """Per step (2), a dict ``(op_name, signed_magnitude) -> LongTensor`` of the (CPU) sample indices applying it."""
    names = policy_tables(tuple(image_size), tuple(policy))[0]
    steps = []
    for step_keys in sample_keys(batch_size, generator, image_size, policy):
        steps.append({names[k]: (step_keys == k).nonzero().squeeze(1) for k in step_keys.unique().tolist() if k >= 0})
    return steps


class _Tables:
    """Per-key parameters on one device: kind, float32 blend ratio and 1 - ratio, threshold, posterize mask,
    and geometric index maps into the flattened image (H * W = the zero fill pixel)."""

    def __init__(self, names, H, W, device):
        self.kind = torch.tensor([KINDS.index("Geometric" if op in GEOMETRIC else op) for op, _ in names])
        mags = [m for _, m in names]
        # torchvision passes python floats, which its float32 kernels round to float32: do the same here
        as32 = lambda vals: torch.tensor(vals, dtype=torch.float64).float().view(-1, 1, 1, 1).to(device)  # noqa
        self.ratio = as32([1.0 + m for m in mags])
        self.one_minus = as32([1.0 - (1.0 + m) for m in mags])
        self.threshold = as32(mags)
        bits = [min(max(int(m), 0), 8) for m in mags]  # only Posterize keys use it
        self.mask = torch.tensor([((1 << b) - 1) << (8 - b) for b in bits], dtype=torch.uint8,
                                 device=device).view(-1, 1, 1, 1)
        index_image = torch.arange(1, H * W + 1, dtype=torch.float32, device=device).view(1, H, W)
        maps = []
        for op, mag in names:
            m = apply_op(index_image, op, mag).flatten().long() - 1 if op in GEOMETRIC else torch.arange(H * W)
            maps.append(torch.where(m < 0, H * W, m.to(device)))
        self.maps = torch.stack(maps)


_TABLES: dict = {}


def _tables(H, W, device, policy=CIFAR10_POLICY):
    key = (H, W, str(device), id(policy))
    if key not in _TABLES:
        _TABLES[key] = _Tables(policy_tables((H, W), tuple(policy))[0], H, W, device)
    return _TABLES[key]


def _grayscale_floor(x):
    r, g, b = x.unbind(dim=-3)  # torchvision's _rgb_to_grayscale_image, kept float, floored for uint8 input
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(-3).floor_()


def _blend(x, other, ratio, one_minus):
    # == torchvision _blend: x * r + (1 - r) * other, with add_(alpha=) 's fused rounding, which addcmul_ matches
    return x.mul(ratio).addcmul_(other, one_minus).clamp_(0, 255).to(torch.uint8)


def _apply_kind(x, kind, keys, t: _Tables):
    """One op kind on the samples ``x`` (n, 3, H, W) uint8, each with its own key (magnitude)."""
    if kind == "Geometric":
        n, C, H, W = x.shape
        flat = torch.nn.functional.pad(x.reshape(n, C, H * W), (0, 1))
        return flat.gather(2, t.maps[keys][:, None, :].expand(n, C, H * W)).view(n, C, H, W)
    if kind == "Brightness":
        return x.mul(t.ratio[keys]).clamp_(0, 255).to(torch.uint8)
    if kind == "Color":
        return _blend(x, _grayscale_floor(x), t.ratio[keys], t.one_minus[keys])
    if kind == "Contrast":
        mean = _grayscale_floor(x).mean(dim=(-3, -2, -1), keepdim=True)
        return _blend(x, mean, t.ratio[keys], t.one_minus[keys])
    if kind == "Sharpness":  # torchvision's adjust_sharpness_image with a per-sample factor
        if x.shape[-1] <= 2 or x.shape[-2] <= 2:
            return x
        a, b = 1.0 / 13.0, 5.0 / 13.0
        kernel = torch.tensor([[a, a, a], [a, b, a], [a, a, a]], device=x.device).expand(3, 1, 3, 3)
        out = x.to(torch.float32, copy=True)
        blurred = torch.nn.functional.conv2d(out, kernel, groups=3).round_()
        view = out[..., 1:-1, 1:-1]
        view.addcmul_(blurred.sub_(view), t.one_minus[keys])
        return out.clamp_(0, 255).to(torch.uint8)
    if kind == "Posterize":
        return x & t.mask[keys]
    if kind == "Solarize":
        return torch.where(x >= t.threshold[keys], 255 - x, x)
    return apply_op(x, kind, 0.0)  # AutoContrast, Equalize, Invert: no magnitude


def auto_augment_cifar10(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-sample AutoAugment with the CIFAR-10 policy on a uint8 (B, 3, H, W) batch; returns uint8 (B, 3, H, W)."""
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise TypeError("auto_augment_cifar10 expects a uint8 (B, 3, H, W) batch")
    B, _, H, W = x.shape
    t = _tables(H, W, x.device)
    out = x.clone()
    for step_keys in sample_keys(B, generator, (H, W)):
        kinds = torch.where(step_keys >= 0, t.kind[step_keys.clamp(min=0)], -1)
        order = torch.argsort(kinds, stable=True)
        counts = torch.bincount(kinds + 1, minlength=len(KINDS) + 1).tolist()
        order_dev, keys_dev = order.to(x.device), step_keys[order].to(x.device)
        pos = counts[0]  # samples without an op come first
        for kind, n in zip(KINDS, counts[1:]):
            if n:
                idx = order_dev[pos:pos + n]
                out[idx] = _apply_kind(out[idx], kind, keys_dev[pos:pos + n], t)
                pos += n
    return out
