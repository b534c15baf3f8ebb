import numpy as np
import pytest

from data_loader.noise import (asymmetric_noise_cifar10, asymmetric_noise_cifar100,
                               instance_noise, make_noisy_labels, realised_noise_rate,
                               symmetric_noise, transition_matrix)
from utils.errors import ConfigError


def balanced(n_per_class, num_classes, seed=0):
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(num_classes), n_per_class))


def test_symmetric_exact_count_and_uniform_draw():
    clean = balanced(100, 10)  # N = 1000
    before = clean.copy()
    noisy = symmetric_noise(clean, 0.37, 10, np.random.default_rng(1))
    np.testing.assert_array_equal(clean, before)
    # 370 samples are relabelled; about 1/10 of them keep their own label.
    changed = np.sum(noisy != clean)
    assert 370 * 0.8 <= changed <= 370 and noisy.dtype == np.int64
    assert set(np.unique(noisy)) <= set(range(10))


def test_symmetric_selects_round_p_n_samples():
    # With a draw that never hits the true label every selected sample changes.
    class NeverTrueLabel:
        def __init__(self):
            self.rng = np.random.default_rng(0)

        def choice(self, *a, **k):
            return self.rng.choice(*a, **k)

        def integers(self, lo, hi, size):
            return np.ones(size, np.int64)

    clean = np.zeros(1001, dtype=np.int64)
    assert np.sum(symmetric_noise(clean, 0.5, 10, NeverTrueLabel()) != clean) == round(0.5 * 1001)


def test_symmetric_realised_rate_large_n():
    clean = balanced(2000, 10)
    noisy = symmetric_noise(clean, 0.5, 10, np.random.default_rng(2))
    assert realised_noise_rate(clean, noisy) == pytest.approx(0.5 * 9 / 10, abs=0.01)


def test_asym_cifar10_exact_map_and_counts():
    clean = np.repeat(np.arange(10), [50, 60, 70, 80, 90, 100, 40, 30, 20, 10])
    clean = np.random.default_rng(0).permutation(clean)
    before = clean.copy()
    noisy = asymmetric_noise_cifar10(clean, 0.4, np.random.default_rng(3))
    np.testing.assert_array_equal(clean, before)
    T = transition_matrix(clean, noisy, 10)
    counts = {(c, t): int(np.sum((clean == c) & (noisy == t))) for c in range(10) for t in range(10)}
    # round(0.4 * n_c) flips per source class, exactly to the mapped target
    assert counts[(9, 1)] == 4 and counts[(2, 0)] == 28 and counts[(4, 7)] == 36
    assert counts[(3, 5)] == 32 and counts[(5, 3)] == 40
    off_diag = sum(v for (c, t), v in counts.items() if c != t)
    assert off_diag == 4 + 28 + 36 + 32 + 40  # nothing else changes, no double flips
    for c in (0, 1, 6, 7, 8):
        assert T[c, c] == 1.0


def test_asym_cifar100_block_transitions():
    clean = balanced(400, 100)
    noisy = asymmetric_noise_cifar100(clean, 0.3, np.random.default_rng(4))
    T = transition_matrix(clean, noisy, 100)
    expected = np.eye(100) * 0.7
    for c in range(100):
        expected[c, c // 5 * 5 + (c + 1) % 5] = 0.3
    # 40,000 samples: each entry is a mean of 400 Bernoullis
    assert np.abs(T - expected).max() < 0.1
    assert np.abs(T - expected).mean() < 0.002
    assert T[4, 0] > 0.2 and T[4, 5] == 0  # wraps within the block, not across


def test_instance_noise_rate_and_never_self_flip():
    rng = np.random.default_rng(0)
    clean = balanced(300, 10)  # N = 3000
    images = rng.integers(0, 256, size=(3000, 4, 4, 3), dtype=np.uint8)
    before = images.copy()
    for tau in (0.2, 0.4):
        noisy = instance_noise(clean, images, tau, 10, np.random.default_rng(7))
        assert abs(realised_noise_rate(clean, noisy) - tau) < 0.02
    np.testing.assert_array_equal(images, before)
    # float features are used as given
    feats = rng.normal(size=(3000, 20))
    noisy = instance_noise(clean, feats, 0.4, 10, np.random.default_rng(8))
    assert abs(realised_noise_rate(clean, noisy) - 0.4) < 0.02


def test_instance_noise_flips_depend_on_instance():
    # Samples with identical inputs and labels share their flip target distribution:
    # with a single repeated image the flipped labels pile onto few classes.
    clean = np.zeros(2000, dtype=np.int64)
    images = np.repeat(np.random.default_rng(0).normal(size=(1, 50)), 2000, axis=0)
    noisy = instance_noise(clean, images, 0.5, 10, np.random.default_rng(1))
    flipped = noisy[noisy != clean]
    assert len(flipped) > 800 and np.bincount(flipped).max() > 0.5 * len(flipped)


@pytest.mark.parametrize("kind", ["sym", "asym", "instance"])
def test_dispatcher_deterministic_per_seed(kind):
    clean = balanced(100, 10)
    images = np.random.default_rng(0).integers(0, 256, (1000, 8, 8, 3), dtype=np.uint8)
    a = make_noisy_labels(clean, kind, 0.4, 10, seed=5, images=images)
    b = make_noisy_labels(clean, kind, 0.4, 10, seed=5, images=images)
    c = make_noisy_labels(clean, kind, 0.4, 10, seed=6, images=images)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dispatcher_clean_and_zero_rate_copy():
    clean = balanced(10, 10)
    for kind, rate in (("clean", 0.5), ("sym", 0.0)):
        out = make_noisy_labels(clean, kind, rate, 10, seed=0)
        np.testing.assert_array_equal(out, clean)
        assert out is not clean


def test_dispatcher_asym_by_num_classes():
    clean = balanced(50, 100)
    out = make_noisy_labels(clean, "asym", 0.5, 100, seed=0, dataset="cifar100")
    assert np.all((out == clean) | (out == clean // 5 * 5 + (clean + 1) % 5))
    with pytest.raises(ConfigError, match="asym"):
        make_noisy_labels(balanced(5, 7), "asym", 0.5, 7, seed=0, dataset="other")


def test_dispatcher_errors():
    clean = balanced(5, 10)
    with pytest.raises(ConfigError, match="noise.type.*sym.*bogus"):
        make_noisy_labels(clean, "bogus", 0.2, 10, seed=0)
    with pytest.raises(ConfigError, match="noise.rate"):
        make_noisy_labels(clean, "sym", 1.5, 10, seed=0)
    with pytest.raises(ConfigError, match="noise.rate"):
        make_noisy_labels(clean, "sym", -0.1, 10, seed=0)
    with pytest.raises(ConfigError, match="cifar_n"):
        make_noisy_labels(clean, "human", 0.2, 10, seed=0)
    with pytest.raises(ConfigError, match="images"):
        make_noisy_labels(clean, "instance", 0.2, 10, seed=0)


def test_transition_matrix_and_rate_by_hand():
    clean = np.array([0, 0, 0, 0, 1, 1, 2])
    noisy = np.array([0, 1, 1, 2, 1, 1, 0])
    T = transition_matrix(clean, noisy, 4)
    np.testing.assert_allclose(T, [[0.25, 0.5, 0.25, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert realised_noise_rate(clean, noisy) == pytest.approx(4 / 7)
