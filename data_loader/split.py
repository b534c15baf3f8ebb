"""Seeded, stratified index splits."""
import numpy as np

from utils.errors import ConfigError


def stratified_split(labels, fraction, seed):
    """Return sorted disjoint (train_idx, val_idx); round(fraction*n_c) samples
    of each class c go to val."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"validation fraction must be in [0, 1], got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val = [rng.choice(np.flatnonzero(labels == c), size=int(round(fraction * n)), replace=False)
           for c, n in zip(*np.unique(labels, return_counts=True))]
    val_idx = np.sort(np.concatenate(val + [np.empty(0, np.int64)])).astype(np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels), dtype=np.int64), val_idx)
    return train_idx, val_idx


def stratified_subset(labels, n_per_class, seed):
    """Return sorted indices of n_per_class random samples of every class."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for c, n in zip(*np.unique(labels, return_counts=True)):
        if n < n_per_class:
            raise ConfigError(f"class {c} has {n} samples, fewer than the "
                              f"{n_per_class} per class requested")
        picked.append(rng.choice(np.flatnonzero(labels == c), size=n_per_class, replace=False))
    return np.sort(np.concatenate(picked + [np.empty(0, np.int64)])).astype(np.int64)
