"""Synthetic label noise: pure, seeded functions from clean to noisy labels.

Every function returns a new int64 array and never modifies its inputs.
"""
import numpy as np

from utils.errors import ConfigError

NOISE_TYPES = ("clean", "sym", "asym", "instance")
# CIFAR-10 class-dependent flips: truck->automobile, bird->airplane,
# deer->horse, cat<->dog (Patrini et al. 2017).
CIFAR10_ASYM_MAP = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


def _check_rate(rate):
    if not 0.0 <= rate <= 1.0:  # also rejects NaN
        raise ConfigError(f"noise.rate must be in [0, 1], got {rate}")


def symmetric_noise(labels, rate, num_classes, rng):
    """Exactly round(rate*N) samples get a label drawn uniformly from all
    classes (possibly their own one), as in the official SOP code."""
    _check_rate(rate)
    noisy = np.array(labels, dtype=np.int64)
    idx = rng.choice(len(noisy), size=int(round(rate * len(noisy))), replace=False)
    noisy[idx] = rng.integers(0, num_classes, size=len(idx))
    return noisy


def asymmetric_noise_cifar10(labels, rate, rng):
    """Flip exactly round(rate*n_c) samples of each source class c in
    CIFAR10_ASYM_MAP to its target; choices are made on the clean labels."""
    _check_rate(rate)
    clean = np.asarray(labels, dtype=np.int64)
    noisy = clean.copy()
    for src, dst in CIFAR10_ASYM_MAP.items():
        members = np.flatnonzero(clean == src)
        chosen = rng.choice(members, size=int(round(rate * len(members))), replace=False)
        noisy[chosen] = dst
    return noisy


def asymmetric_noise_cifar100(labels, rate, rng):
    """Within each block of 5 consecutive classes, flip c to the next class
    (circularly, 4->0) independently with probability rate."""
    _check_rate(rate)
    clean = np.asarray(labels, dtype=np.int64)
    following = clean // 5 * 5 + (clean % 5 + 1) % 5
    return np.where(rng.random(len(clean)) < rate, following, clean)


def _truncated_normal(mean, std, size, rng, low=0.0, high=1.0):
    """Normal(mean, std) restricted to [low, high] by resampling rejects."""
    out = rng.normal(mean, std, size)
    bad = (out < low) | (out > high)
    while bad.any():
        out[bad] = rng.normal(mean, std, bad.sum())
        bad = (out < low) | (out > high)
    return out


def instance_noise(labels, images, rate, num_classes, rng):
    """Instance-dependent noise of Xia et al. (NeurIPS 2020).

    `images`: uint8 arrays (any shape with N first, e.g. N,32,32,3) are scaled
    to [0,1] and flattened in their stored order; float arrays are flattened
    as given (e.g. already normalised (N, D) features).
    Per sample: q ~ N(rate, 0.1) truncated to [0,1]; p = q * softmax(x @ W[y])
    over the other classes, p[y] = 1 - q; the noisy label is drawn from p.
    """
    _check_rate(rate)
    clean = np.asarray(labels, dtype=np.int64)
    x = np.asarray(images)
    scale = 1.0 / 255 if x.dtype == np.uint8 else 1.0
    x = x.reshape(len(clean), -1)
    flip_rate = _truncated_normal(rate, 0.1, len(clean), rng)
    W = rng.standard_normal((num_classes, x.shape[1], num_classes))
    u = rng.random(len(clean))
    noisy = clean.copy()
    for c in np.unique(clean):
        idx = np.flatnonzero(clean == c)
        logits = (x[idx].astype(np.float64) * scale) @ W[c]
        logits[:, c] = -np.inf
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p *= (flip_rate[idx] / p.sum(axis=1))[:, None]
        p[:, c] = 1.0 - flip_rate[idx]
        cum = np.cumsum(p, axis=1)
        # u scaled by the row total so rounding can never push it past the end
        noisy[idx] = (cum < (u[idx] * cum[:, -1])[:, None]).sum(axis=1)
    return noisy


def make_noisy_labels(clean_labels, noise_type, rate, num_classes, seed,
                      images=None, dataset="cifar10"):
    """Dispatch to the generator named by noise_type, seeded by `seed`."""
    if noise_type == "human":
        raise ConfigError("noise.type 'human' (CIFAR-N) labels are loaded by "
                          "data_loader.cifar_n.load_cifar_n, not generated here")
    if noise_type not in NOISE_TYPES:
        raise ConfigError(f"noise.type must be one of {', '.join(NOISE_TYPES)} "
                          f"(or human), got {noise_type!r}")
    _check_rate(rate)
    if noise_type == "clean" or rate == 0:
        return np.array(clean_labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if noise_type == "sym":
        return symmetric_noise(clean_labels, rate, num_classes, rng)
    if noise_type == "asym":
        if num_classes == 10:
            return asymmetric_noise_cifar10(clean_labels, rate, rng)
        if num_classes == 100:
            return asymmetric_noise_cifar100(clean_labels, rate, rng)
        raise ConfigError(f"noise.type 'asym' is defined for CIFAR-10/100 only "
                          f"(dataset {dataset!r} has {num_classes} classes)")
    if images is None:
        raise ConfigError("noise.type 'instance' needs the training images")
    return instance_noise(clean_labels, images, rate, num_classes, rng)


def transition_matrix(clean, noisy, num_classes):
    """T[i, j] = fraction of samples of clean class i labelled j (zero rows
    for absent classes)."""
    clean = np.asarray(clean, dtype=np.int64)
    noisy = np.asarray(noisy, dtype=np.int64)
    counts = np.bincount(clean * num_classes + noisy, minlength=num_classes ** 2)
    counts = counts.reshape(num_classes, num_classes).astype(np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def realised_noise_rate(clean, noisy):
    """Fraction of labels that differ from the clean ones."""
    return float(np.mean(np.asarray(clean) != np.asarray(noisy)))
