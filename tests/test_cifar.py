import os

import numpy as np
import pytest

from data_loader.cifar import load_cifar
from tests.cifar_fixtures import write_fake_cifar10, write_fake_cifar100
from utils.errors import ConfigError, DataError


def test_cifar10_round_trip(tmp_path):
    fake = write_fake_cifar10(tmp_path, n_train=53, n_test=17, seed=3)
    d = load_cifar("cifar10", str(tmp_path), download=False)
    assert d.train_images.shape == (53, 32, 32, 3) and d.train_images.dtype == np.uint8
    assert d.test_images.shape == (17, 32, 32, 3)
    assert d.train_labels.dtype == np.int64 and d.train_labels.shape == (53,)
    np.testing.assert_array_equal(d.train_images, fake["train_images"])
    np.testing.assert_array_equal(d.train_labels, fake["train_labels"])
    np.testing.assert_array_equal(d.test_images, fake["test_images"])
    np.testing.assert_array_equal(d.test_labels, fake["test_labels"])
    assert d.num_classes == 10 and d.class_names[9] == "truck"
    assert d.mean == (0.4914, 0.4822, 0.4465) and d.std == (0.2470, 0.2435, 0.2616)


def test_cifar10_pixel_layout(tmp_path):
    # The release stores R plane, G plane, B plane row-major: check one pixel by hand.
    write_fake_cifar10(tmp_path, n_train=5, n_test=5)
    import pickle
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"][0]
    img = load_cifar("cifar10", str(tmp_path), download=False).train_images[0]
    row, col = 4, 7
    assert tuple(img[row, col]) == (raw[row * 32 + col], raw[1024 + row * 32 + col],
                                    raw[2048 + row * 32 + col])


def test_cifar100_round_trip(tmp_path):
    fake = write_fake_cifar100(tmp_path, n_train=120, n_test=30)
    d = load_cifar("cifar100", str(tmp_path), download=False)
    np.testing.assert_array_equal(d.train_images, fake["train_images"])
    np.testing.assert_array_equal(d.test_labels, fake["test_labels"])
    assert d.num_classes == 100 and len(d.class_names) == 100
    assert d.mean == (0.5071, 0.4865, 0.4409)


def test_missing_dir_no_download(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py.*disabled"):
        load_cifar("cifar10", str(tmp_path), download=False)


def test_download_failure_is_data_error(tmp_path, monkeypatch):
    import torchvision.datasets

    class Offline:
        def __init__(self, *a, **k):
            raise RuntimeError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", Offline)
    with pytest.raises(DataError, match="cifar-100-python.*download failed: no network"):
        load_cifar("cifar100", str(tmp_path), download=True)


def test_unknown_dataset(tmp_path):
    with pytest.raises(ConfigError, match="svhn"):
        load_cifar("svhn", str(tmp_path))


def test_corrupt_pickle_names_file(tmp_path):
    write_fake_cifar10(tmp_path, n_train=10, n_test=5)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match="data_batch_3"):
        load_cifar("cifar10", str(tmp_path), download=False)


def test_missing_file_names_file(tmp_path):
    write_fake_cifar10(tmp_path, n_train=10, n_test=5)
    os.remove(tmp_path / "cifar-10-batches-py" / "test_batch")
    with pytest.raises(DataError, match="test_batch"):
        load_cifar("cifar10", str(tmp_path), download=False)


def _rewrite(path, changes):
    import pickle
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    for k, v in changes.items():
        if v is None:
            del d[k]
        else:
            d[k] = v
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


@pytest.mark.parametrize("changes, msg", [
    ({b"labels": None}, "no 'labels'"),
    ({b"data": np.zeros((2, 100), np.uint8)}, r"\(n, 3072\)"),
    ({b"labels": [0, 1, 2]}, "3 labels for 2 images"),
    ({b"labels": [0, 10]}, "outside"),
])
def test_bad_batch_contents(tmp_path, changes, msg):
    write_fake_cifar10(tmp_path, n_train=10, n_test=5)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    _rewrite(path, changes)
    with pytest.raises(DataError, match=f"data_batch_2.*{msg}"):
        load_cifar("cifar10", str(tmp_path), download=False)


def test_pickle_with_foreign_global_is_refused(tmp_path):
    import pickle
    write_fake_cifar10(tmp_path, n_train=10, n_test=5)
    path = tmp_path / "cifar-10-batches-py" / "batches.meta"
    with open(path, "wb") as f:
        pickle.dump({b"label_names": os.getcwd}, f, protocol=2)
    with pytest.raises(DataError, match="batches.meta.*not allowed"):
        load_cifar("cifar10", str(tmp_path), download=False)
