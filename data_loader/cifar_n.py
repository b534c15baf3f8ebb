"""CIFAR-N real human noisy labels (Wei et al., ICLR 2022)."""
import os
import tempfile
import urllib.request

import numpy as np

from utils.errors import ConfigError, DataError

_URL = "https://raw.githubusercontent.com/UCSC-REAL/cifar-10-100n/main/data/{}"
_SPECS = {
    "cifar10": ("CIFAR-10_human.pt", 10, {
        "aggre": "aggre_label", "random1": "random_label1", "random2": "random_label2",
        "random3": "random_label3", "worst": "worse_label"}),
    "cifar100": ("CIFAR-100_human.pt", 100, {"noisy": "noisy_label"}),
}


def _numpy_allowlist():
    """The globals a torch.save'd dict of numpy int arrays needs, and no more.

    Files written under numpy 1.x name `numpy.core.multiarray._reconstruct`,
    numpy 2.x writes `numpy._core...`; both resolve to the same function.
    Arrays are rebuilt via ndarray.__setstate__, so the dtype classes of the
    label arrays must be listed too.
    """
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    allow = [np.ndarray, np.dtype,
             (_reconstruct, "numpy.core.multiarray._reconstruct"),
             (_reconstruct, "numpy._core.multiarray._reconstruct")]
    dtypes = getattr(np, "dtypes", None)
    for name in ("Int8DType", "Int16DType", "Int32DType", "Int64DType", "UInt8DType",
                 "UInt16DType", "UInt32DType", "UInt64DType", "LongDType",
                 "ULongDType", "LongLongDType", "ULongLongDType"):
        if hasattr(dtypes, name):
            allow.append(getattr(dtypes, name))
    return allow


def _safe_load(path):
    import torch
    try:
        with torch.serialization.safe_globals(_numpy_allowlist()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        # torch's weights-only message is long and advises weights_only=False;
        # keep only the line that says what was wrong.
        boiler = ("Weights only load failed", "Please file an issue", "Check the documentation")
        lines = [ln.strip() for ln in str(e).splitlines()
                 if ln.strip() and not ln.strip().startswith(boiler)]
        reason = lines[0] if lines else type(e).__name__
        raise DataError(f"cannot safely read CIFAR-N label file {path} "
                        f"(expected a torch.save'd dict of numpy int arrays): {reason}") from None
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR-N label file {path} does not hold a dict")
    return obj


def _download(url, dest):
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest) or ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=15) as r:
            f.write(r.read())
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _as_labels(v, path, key, num_classes):
    if hasattr(v, "numpy"):  # a torch tensor
        v = v.numpy()
    arr = np.asarray(v)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise DataError(f"CIFAR-N label file {path}: '{key}' is not a 1-D integer array")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise DataError(f"CIFAR-N label file {path}: '{key}' has labels outside "
                        f"[0, {num_classes})")
    return arr


def load_cifar_n(dataset, label_set, path=None, data_dir="data", download=True,
                 expected_len=50000, train_labels=None):
    """Return (noisy_labels, clean_labels), int64 arrays of the training set.

    label_set: aggre/random1/random2/random3/worst for cifar10, noisy for
    cifar100. The file is `path` if given, else data_dir/CIFAR-N/<file>,
    downloaded from the CIFAR-N authors' repository when missing. Given the
    dataset's ``train_labels``, the file's clean labels must equal them: the
    human labels are per position, so a copy of CIFAR in another order would
    pair them with other images.
    """
    if dataset not in _SPECS:
        raise ConfigError(f"CIFAR-N exists for {sorted(_SPECS)} only, got dataset {dataset!r}")
    filename, num_classes, sets = _SPECS[dataset]
    if label_set not in sets:
        raise ConfigError(f"noise.label_set for {dataset} must be one of "
                          f"{', '.join(sets)}, got {label_set!r}")
    if path is None:
        path = os.path.join(data_dir, "CIFAR-N", filename)
    if not os.path.isfile(path):
        if not download:
            raise DataError(f"CIFAR-N label file not found: put {filename} at {path} "
                            f"(download is disabled)")
        try:
            _download(_URL.format(filename), path)
        except Exception as e:
            raise DataError(f"CIFAR-N label file not found and download failed "
                            f"({type(e).__name__}: {e}): put {filename} at {path}") from None
    obj = _safe_load(path)
    labels = {}
    for key in ("clean_label", sets[label_set]):
        if key not in obj:
            raise DataError(f"CIFAR-N label file {path} has no '{key}' entry")
        labels[key] = _as_labels(obj[key], path, key, num_classes)
        if len(labels[key]) != expected_len:
            raise DataError(f"CIFAR-N label file {path}: '{key}' has {len(labels[key])} "
                            f"labels but the training set has {expected_len}")
    if train_labels is not None and not np.array_equal(labels["clean_label"], train_labels):
        differ = int((labels["clean_label"] != np.asarray(train_labels)).sum())
        raise DataError(f"CIFAR-N label file {path}: its clean labels differ from the training set's at {differ} "
                        f"of {expected_len} positions, so its human labels would go to other images; use the "
                        f"official CIFAR python batches (data_batch_1..5 in their order)")
    return labels[sets[label_set]], labels["clean_label"]
