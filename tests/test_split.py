import numpy as np
import pytest

from data_loader.split import stratified_split, stratified_subset
from utils.errors import ConfigError


def labels_with_counts(counts, seed=0):
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(len(counts)), counts))


def test_stratified_split_counts_and_partition():
    labels = labels_with_counts([10, 25, 7, 40])
    train, val = stratified_split(labels, 0.2, seed=0)
    assert train.dtype == np.int64 and val.dtype == np.int64
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    assert len(np.intersect1d(train, val)) == 0
    np.testing.assert_array_equal(np.union1d(train, val), np.arange(len(labels)))
    # round(0.2 * n_c) per class: 2, 5, 1, 8
    assert np.bincount(labels[val], minlength=4).tolist() == [2, 5, 1, 8]


def test_stratified_split_seeded():
    labels = labels_with_counts([50, 50, 50])
    a = stratified_split(labels, 0.1, seed=1)
    b = stratified_split(labels, 0.1, seed=1)
    c = stratified_split(labels, 0.1, seed=2)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_stratified_split_edges():
    labels = labels_with_counts([3, 4])
    train, val = stratified_split(labels, 0.0, seed=0)
    assert len(val) == 0 and len(train) == 7
    with pytest.raises(ConfigError):
        stratified_split(labels, 1.5, seed=0)


def test_stratified_subset():
    labels = labels_with_counts([10, 12, 5])
    idx = stratified_subset(labels, 5, seed=3)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    assert np.bincount(labels[idx]).tolist() == [5, 5, 5]
    np.testing.assert_array_equal(idx, stratified_subset(labels, 5, seed=3))
    with pytest.raises(ConfigError, match="class 2 has 5"):
        stratified_subset(labels, 6, seed=0)
