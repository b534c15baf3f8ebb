"""Read CIFAR-10 / CIFAR-100 from the standard python-pickle release."""
import os
import pickle
from dataclasses import dataclass

import numpy as np

from utils.errors import ConfigError, DataError

_SPECS = {
    "cifar10": dict(
        folder="cifar-10-batches-py",
        train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"],
        meta="batches.meta", label_key="labels", names_key="label_names",
        num_classes=10, tv_class="CIFAR10",
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)),
    "cifar100": dict(
        folder="cifar-100-python", train=["train"], test=["test"],
        meta="meta", label_key="fine_labels", names_key="fine_label_names",
        num_classes=100, tv_class="CIFAR100",
        mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762)),
}

# The release pickles only need these globals; refusing everything else means
# a downloaded/user-supplied file cannot run arbitrary code when loaded.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


@dataclass
class CifarData:
    train_images: np.ndarray  # uint8 (N, 32, 32, 3) HWC
    train_labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    class_names: list
    mean: tuple
    std: tuple


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        if module == "numpy.core.multiarray":  # numpy 2 renamed numpy.core
            try:
                import numpy._core.multiarray  # noqa: F401
                module = "numpy._core.multiarray"
            except ImportError:
                pass
        return super().find_class(module, name)


def _text(v):
    return v.decode("latin1") if isinstance(v, bytes) else v


def _read_pickle(path):
    if not os.path.isfile(path):
        raise DataError(f"CIFAR file missing: {path}")
    try:
        with open(path, "rb") as f:
            obj = _SafeUnpickler(f, encoding="latin1").load()
    except Exception as e:
        raise DataError(f"cannot read CIFAR file {path}: {type(e).__name__}: {e}") from None
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR file {path} does not hold a dict")
    return {_text(k): v for k, v in obj.items()}


def _read_batch(path, label_key, num_classes):
    d = _read_pickle(path)
    for key in ("data", label_key):
        if key not in d:
            raise DataError(f"CIFAR file {path} has no '{key}' entry")
    data = np.asarray(d["data"])
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DataError(f"CIFAR file {path}: 'data' must be uint8 (n, 3072), "
                        f"got {data.dtype} {data.shape}")
    try:
        labels = np.asarray(d[label_key], dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"CIFAR file {path}: '{label_key}' is not a list of ints") from None
    if labels.shape != (len(data),):
        raise DataError(f"CIFAR file {path}: {labels.size} labels for {len(data)} images")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"CIFAR file {path}: labels outside [0, {num_classes})")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _read_split(folder, files, label_key, num_classes):
    parts = [_read_batch(os.path.join(folder, f), label_key, num_classes) for f in files]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def _download(spec, data_dir, folder):
    try:
        import torchvision.datasets as tvd
        cls = getattr(tvd, spec["tv_class"])
        for train in (True, False):
            cls(root=data_dir, train=train, download=True)
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"expected {folder} (not found) and download failed: {reason}") from None
    if not os.path.isdir(folder):
        raise DataError(f"expected {folder} after download, but it is not there")


def load_cifar(dataset: str, data_dir: str, download: bool = True) -> CifarData:
    """Load train/test images (uint8 HWC) and labels of CIFAR-10 or CIFAR-100.

    Reads `data_dir/cifar-10-batches-py/` (or `cifar-100-python/`) without any
    md5 check; downloads it through torchvision only when it is absent.
    """
    if dataset not in _SPECS:
        raise ConfigError(f"dataset must be one of {sorted(_SPECS)}, got {dataset!r}")
    spec = _SPECS[dataset]
    folder = os.path.join(data_dir, spec["folder"])
    if not os.path.isdir(folder):
        if not download:
            raise DataError(f"expected {folder} (not found) and download is disabled")
        _download(spec, data_dir, folder)
    C = spec["num_classes"]
    train_x, train_y = _read_split(folder, spec["train"], spec["label_key"], C)
    test_x, test_y = _read_split(folder, spec["test"], spec["label_key"], C)
    meta_path = os.path.join(folder, spec["meta"])
    names = _read_pickle(meta_path).get(spec["names_key"])
    if not isinstance(names, (list, tuple)) or len(names) != C:
        raise DataError(f"CIFAR file {meta_path}: '{spec['names_key']}' must list {C} names")
    return CifarData(train_x, train_y, test_x, test_y, C, [_text(n) for n in names],
                     spec["mean"], spec["std"])
