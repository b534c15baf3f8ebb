import io
import os
import urllib.request

import numpy as np
import pytest
import torch

from data_loader.cifar_n import load_cifar_n
from utils.errors import ConfigError, DataError

REAL_C10N = "/work/shared/data/cifar-n/CIFAR-10_human.pt"


def write_c10n(path, n=100, seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 10, n)
    d = {"clean_label": clean, "aggre_label": clean.copy(),
         "worse_label": (clean + 1) % 10, "random_label1": rng.integers(0, 10, n),
         "random_label2": clean.copy(), "random_label3": clean.copy()}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(d, path)
    return d


def test_load_default_location(tmp_path):
    d = write_c10n(str(tmp_path / "CIFAR-N" / "CIFAR-10_human.pt"))
    noisy, clean = load_cifar_n("cifar10", "worst", None, str(tmp_path), False, expected_len=100)
    assert noisy.dtype == np.int64 and clean.dtype == np.int64
    np.testing.assert_array_equal(clean, d["clean_label"])
    np.testing.assert_array_equal(noisy, d["worse_label"])
    noisy, _ = load_cifar_n("cifar10", "random1", None, str(tmp_path), False, expected_len=100)
    np.testing.assert_array_equal(noisy, d["random_label1"])


def test_a_dataset_copy_in_another_order_is_refused(tmp_path):
    d = write_c10n(str(tmp_path / "CIFAR-N" / "CIFAR-10_human.pt"))
    same = load_cifar_n("cifar10", "worst", None, str(tmp_path), False, 100, train_labels=d["clean_label"])
    np.testing.assert_array_equal(same[0], d["worse_label"])
    swapped = np.concatenate([d["clean_label"][50:], d["clean_label"][:50]])   # two batches in the other order
    differ = int((swapped != d["clean_label"]).sum())
    with pytest.raises(DataError, match=f"clean labels differ from the training set's at {differ} of 100 positions"):
        load_cifar_n("cifar10", "worst", None, str(tmp_path), False, 100, train_labels=swapped)


def test_explicit_path_and_cifar100(tmp_path):
    clean = np.arange(200) % 100
    path = str(tmp_path / "c100.pt")
    torch.save({"clean_label": clean, "noisy_label": (clean + 5) % 100}, path)
    noisy, c = load_cifar_n("cifar100", "noisy", path, "unused", False, expected_len=200)
    np.testing.assert_array_equal(noisy, (clean + 5) % 100)
    np.testing.assert_array_equal(c, clean)


def test_missing_file_no_download(tmp_path):
    expected = os.path.join(str(tmp_path), "CIFAR-N", "CIFAR-10_human.pt")
    with pytest.raises(DataError, match="put CIFAR-10_human.pt at " + expected):
        load_cifar_n("cifar10", "aggre", None, str(tmp_path), False)


def test_download_failure_says_where_to_put_file(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise OSError("no network")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="download failed.*no network.*CIFAR-100_human.pt"):
        load_cifar_n("cifar100", "noisy", None, str(tmp_path), True)
    assert os.listdir(tmp_path / "CIFAR-N") == []  # no partial file left behind


def test_download_writes_file(tmp_path, monkeypatch):
    src = str(tmp_path / "src.pt")
    write_c10n(src, n=30)
    seen = []

    def fake_urlopen(url, timeout):
        seen.append(url)
        return io.BytesIO(open(src, "rb").read())
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    noisy, clean = load_cifar_n("cifar10", "worst", None, str(tmp_path / "d"), True, expected_len=30)
    np.testing.assert_array_equal(noisy, (clean + 1) % 10)
    assert seen[0].endswith("UCSC-REAL/cifar-10-100n/main/data/CIFAR-10_human.pt")
    assert os.path.isfile(tmp_path / "d" / "CIFAR-N" / "CIFAR-10_human.pt")


def test_wrong_length(tmp_path):
    path = str(tmp_path / "x.pt")
    write_c10n(path, n=100)
    with pytest.raises(DataError, match="x.pt.*100 labels.*50000"):
        load_cifar_n("cifar10", "aggre", path, str(tmp_path), False)


def test_unknown_label_set_and_dataset(tmp_path):
    with pytest.raises(ConfigError, match="aggre, random1, random2, random3, worst"):
        load_cifar_n("cifar10", "noisy", None, str(tmp_path), False)
    with pytest.raises(ConfigError, match="svhn"):
        load_cifar_n("svhn", "aggre", None, str(tmp_path), False)


class Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def test_unsafe_file_is_refused(tmp_path):
    path = str(tmp_path / "evil.pt")
    torch.save({"clean_label": Payload(), "aggre_label": np.zeros(3, np.int64)}, path)
    with pytest.raises(DataError, match="evil.pt.*getcwd"):
        load_cifar_n("cifar10", "aggre", path, str(tmp_path), False, expected_len=3)


def test_corrupt_and_missing_key(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.pt"):
        load_cifar_n("cifar10", "aggre", str(bad), str(tmp_path), False)
    path = str(tmp_path / "partial.pt")
    torch.save({"clean_label": np.zeros(3, np.int64)}, path)
    with pytest.raises(DataError, match="partial.pt.*worse_label"):
        load_cifar_n("cifar10", "worst", path, str(tmp_path), False, expected_len=3)


@pytest.mark.skipif(not os.path.isfile(REAL_C10N), reason="shared CIFAR-10N file absent")
def test_real_cifar10n_worst_rate():
    noisy, clean = load_cifar_n("cifar10", "worst", REAL_C10N, "unused", False)
    assert len(noisy) == 50000
    assert abs(np.mean(noisy != clean) - 0.402) <= 0.001
