from collections import Counter

import numpy as np
import pytest
import torch
import torchvision.transforms.autoaugment as tva
import torchvision.transforms.functional as F1
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from data_loader.autoaugment import CIFAR10_POLICY, apply_op, augmentation_space, auto_augment_cifar10, sample_ops


def gen(seed):
    return torch.Generator().manual_seed(seed)


def noise_images(n, seed=0):
    return torch.randint(40, 216, (n, 3, 32, 32), dtype=torch.uint8, generator=gen(seed))


def policy_ops():
    """Every (op, signed magnitude) the CIFAR-10 policy can apply at 32x32."""
    space, keys = augmentation_space(10, (32, 32)), set()
    for sub in CIFAR10_POLICY:
        for op, _, mag_id in sub:
            mags, signed = space[op]
            mag = float(mags[mag_id]) if mag_id is not None else 0.0
            keys |= {(op, mag), (op, -mag)} if signed else {(op, mag)}
    return sorted(keys)


def test_policy_table_matches_torchvision():
    ref = tva.AutoAugment(tva.AutoAugmentPolicy.CIFAR10)
    assert CIFAR10_POLICY == ref.policies
    ref_space, space = ref._augmentation_space(10, (32, 32)), augmentation_space(10, (32, 32))
    assert ref_space.keys() == space.keys()
    for k, (mags, signed) in ref_space.items():
        assert torch.equal(mags, space[k][0]) and signed == space[k][1]


@pytest.mark.parametrize("op,mag", policy_ops())
def test_batched_op_exact(op, mag):
    x = noise_images(6)
    y = apply_op(x, op, mag)
    ref = tva._apply_op  # the torchvision op dispatch, run on v2 single images and on PIL images
    for i in range(len(x)):
        single = TF.to_image(x[i]).as_subclass(torch.Tensor)
        assert torch.equal(y[i], apply_op(single, op, mag))
        pil = F1.pil_to_tensor(ref(F1.to_pil_image(x[i]), op, mag, InterpolationMode.NEAREST, None))
        assert (pil.int() - y[i].int()).abs().max() <= 1  # PIL vs tensor rounding only


def test_shape_dtype_determinism_per_sample():
    x = noise_images(1).expand(64, 3, 32, 32)
    y = auto_augment_cifar10(x, gen(0))
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert len({t.numpy().tobytes() for t in y}) > 25
    assert torch.equal(y, auto_augment_cifar10(x, gen(0)))
    assert not torch.equal(y, auto_augment_cifar10(x, gen(1)))


@pytest.mark.parametrize("seed,full_range", [(3, False), (4, True)])
def test_matches_sequential_reference(seed, full_range):
    """Batched execution (per-sample factors, one gather for geometric ops) == torchvision's ops one image at a
    time, bit for bit; full-range pixels exercise the clamps."""
    x = noise_images(128)
    if full_range:
        x = torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8, generator=gen(9))
    y = auto_augment_cifar10(x, gen(seed))
    steps = sample_ops(len(x), gen(seed))
    for i in range(len(x)):
        img = x[i]
        for groups in steps:
            for (op, mag), idx in groups.items():
                if i in idx.tolist():
                    img = apply_op(img, op, mag)
        assert torch.equal(y[i], img)


def two_sample_chi2_p(a: Counter, b: Counter, min_count=10):
    from scipy.stats import chi2_contingency

    keys = sorted(set(a) | set(b), key=repr)
    big = [k for k in keys if a[k] + b[k] >= min_count]
    table = np.array([[a[k] for k in big] + [sum(a[k] for k in keys if k not in big)],
                      [b[k] for k in big] + [sum(b[k] for k in keys if k not in big)]])
    table = table[:, table.sum(0) > 0]
    return chi2_contingency(table)[1]


def test_op_distribution_matches_torchvision(monkeypatch):
    """Sequence of (op, signed magnitude) applied per image: torchvision AutoAugment vs ours."""
    pytest.importorskip("scipy")
    n, calls = 20000, []
    monkeypatch.setattr(tva, "_apply_op", lambda img, op, mag, **kw: calls[-1].append((op, round(mag, 4))) or img)
    aa, img = tva.AutoAugment(tva.AutoAugmentPolicy.CIFAR10), torch.zeros(3, 32, 32, dtype=torch.uint8)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for _ in range(n):
            calls.append([])
            aa(img)
    ref = Counter(tuple(c) for c in calls)
    ours = [[] for _ in range(n)]
    for groups in sample_ops(n, gen(0)):
        for (op, mag), idx in groups.items():
            for i in idx.tolist():
                ours[i].append((op, round(mag, 4)))
    ours = Counter(tuple(c) for c in ours)
    assert set(ours) <= set(ref) | {k for k in ours if ours[k] < 5}
    assert two_sample_chi2_p(ref, ours) > 1e-3


def image_features(y, x):
    """'unchanged', or which of the 4 corners got zero fill (geometric ops): robust to PIL/tensor rounding."""
    out = []
    for t in y:
        corners = t[:, [0, 0, -1, -1], [0, -1, 0, -1]]  # (3, 4)
        out.append("same" if torch.equal(t, x) else tuple((corners == 0).all(0).tolist()))
    return Counter(out)


def test_output_distribution_matches_pil_autoaugment():
    pytest.importorskip("scipy")
    n = 3000
    x = noise_images(1)
    x[..., [0, 0, -1, -1], [0, -1, 0, -1]] = 128  # grey corners: only fill makes them 0
    img, aa = F1.to_pil_image(x[0]), tva.AutoAugment(tva.AutoAugmentPolicy.CIFAR10)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        pil = torch.stack([F1.pil_to_tensor(aa(img)) for _ in range(n)])
    ours = auto_augment_cifar10(x.expand(n, 3, 32, 32), gen(0))
    a, b = image_features(pil, x[0]), image_features(ours, x[0])
    assert 0.15 < a["same"] / n < 0.35 and abs(a["same"] - b["same"]) / n < 0.04
    assert two_sample_chi2_p(a, b) > 1e-3
