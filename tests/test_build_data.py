"""Data assembly: noise on the full set, subset/split indices, strong view only when used."""
import numpy as np

from data_loader.build import build_data
from parse_config import parse_args


def config_for(cifar10_dir, *extra):
    config, _, _ = parse_args(["-c", "config_cifar10.json", "--data_dir", cifar10_dir, *extra])
    return config


def test_strong_view_is_built_only_when_consistency_is_weighted(cifar10_dir):
    assert build_data(config_for(cifar10_dir), "cpu").train_loader.strong_view
    plain = build_data(config_for(cifar10_dir, "--consist", "0"), "cpu")
    assert not plain.train_loader.strong_view
    assert next(iter(plain.train_loader)).x_strong is None


def test_subset_and_validation_split_keep_original_indices_and_same_noise(cifar10_dir):
    full = build_data(config_for(cifar10_dir, "--percent", "0.6"), "cpu")
    part = build_data(config_for(cifar10_dir, "--percent", "0.6", "-o", "data_loader.train_subset=20",
                                 "-o", "data_loader.validation_split=0.25"), "cpu")
    train_index, val_index = part.label_record["train_index"], part.label_record["val_index"]
    assert len(train_index) + len(val_index) == 200          # 20 per class
    given = full.label_record["noisy_labels"][np.concatenate([train_index, val_index])]
    assert len(val_index) == sum(round(0.25 * n) for n in np.bincount(given))   # stratified on given labels
    assert not set(train_index) & set(val_index)
    np.testing.assert_array_equal(part.label_record["noisy_labels"], full.label_record["noisy_labels"])
    np.testing.assert_array_equal(part.train_noisy.numpy(), full.label_record["noisy_labels"][train_index])
    np.testing.assert_array_equal(part.train_clean.numpy(), full.label_record["clean_labels"][train_index])
    assert part.val_loader is not None and len(part.val_loader.labels) == len(val_index)


def test_transition_matrix_and_rate_describe_the_realised_noise(cifar10_dir):
    data = build_data(config_for(cifar10_dir, "--percent", "0.5", "--asym", "true"), "cpu")
    clean, noisy = data.label_record["clean_labels"], data.label_record["noisy_labels"]
    assert data.noise_rate == np.mean(clean != noisy)
    t = data.transition
    np.testing.assert_allclose(t.sum(axis=1), 1.0)
    assert t[9, 1] == np.mean(noisy[clean == 9] == 1) > 0.4      # truck -> automobile
    assert t[0, 0] == 1.0                                        # airplane is never flipped


def test_auto_eval_batch_resolves_to_64_on_cpu_and_a_number_is_kept(cifar10_dir):
    from utils.config_schema import DEFAULTS
    assert DEFAULTS["data_loader"]["eval_batch_size"] == "auto"
    auto = build_data(config_for(cifar10_dir, "-o", "data_loader.validation_split=0.2"), "cpu")
    assert auto.eval_batch_size == auto.test_loader.batch_size == auto.val_loader.batch_size == 64
    assert [len(b.y) for b in auto.test_loader] == [64, 36]              # the fixture's 100 test images
    fixed = build_data(config_for(cifar10_dir, "-o", "data_loader.eval_batch_size=30"), "cpu")
    assert fixed.eval_batch_size == fixed.test_loader.batch_size == 30
