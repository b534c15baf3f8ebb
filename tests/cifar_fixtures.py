"""Write tiny fake CIFAR-10/100 copies in the real python-pickle layout.

Images are class dependent (per-class colour and stripe pattern plus noise),
so a tiny network can learn them. Each writer returns a dict with the folder
("dir") and the arrays it wrote: train_images/test_images (uint8 N,32,32,3),
train_labels/test_labels (int64).
"""
import os
import pickle

import numpy as np


def _make_split(n, num_classes, rng, protos):
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    imgs = protos[labels] + rng.normal(0, 20, size=(n, 32, 32, 3))
    return np.clip(imgs, 0, 255).astype(np.uint8), labels


def _prototypes(num_classes):
    rng = np.random.default_rng(12345)  # fixed: same classes look alike across calls
    colours = rng.uniform(40, 215, size=(num_classes, 1, 1, 3))
    freq = rng.uniform(0.1, 0.8, size=(num_classes, 1, 1, 1))
    phase = rng.uniform(0, np.pi, size=(num_classes, 1, 1, 1))
    rows = np.arange(32).reshape(1, 32, 1, 1)
    return colours + 30 * np.sin(freq * rows + phase)


def _dump(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _batch(name, images, label_entries):
    d = {b"batch_label": name.encode(),
         b"data": images.transpose(0, 3, 1, 2).reshape(len(images), -1).copy(),
         b"filenames": [f"{name}_{i:05d}.png".encode() for i in range(len(images))]}
    d.update(label_entries)
    return d


def write_fake_cifar10(root, n_train=500, n_test=100, seed=0):
    """Write root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}."""
    rng = np.random.default_rng(seed)
    protos = _prototypes(10)
    tr_x, tr_y = _make_split(n_train, 10, rng, protos)
    te_x, te_y = _make_split(n_test, 10, rng, protos)
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    for b, idx in enumerate(np.array_split(np.arange(n_train), 5)):
        name = f"data_batch_{b + 1}"
        _dump(_batch(name, tr_x[idx], {b"labels": [int(v) for v in tr_y[idx]]}),
              os.path.join(folder, name))
    _dump(_batch("test_batch", te_x, {b"labels": [int(v) for v in te_y]}),
          os.path.join(folder, "test_batch"))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
             b"dog", b"frog", b"horse", b"ship", b"truck"]
    _dump({b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072},
          os.path.join(folder, "batches.meta"))
    return dict(dir=folder, train_images=tr_x, train_labels=tr_y,
                test_images=te_x, test_labels=te_y)


def write_fake_cifar100(root, n_train=1000, n_test=200, seed=0):
    """Write root/cifar-100-python/{train,test,meta}."""
    rng = np.random.default_rng(seed)
    protos = _prototypes(100)
    tr_x, tr_y = _make_split(n_train, 100, rng, protos)
    te_x, te_y = _make_split(n_test, 100, rng, protos)
    folder = os.path.join(root, "cifar-100-python")
    os.makedirs(folder, exist_ok=True)
    for name, x, y in (("train", tr_x, tr_y), ("test", te_x, te_y)):
        labels = {b"fine_labels": [int(v) for v in y],
                  b"coarse_labels": [int(v) // 5 for v in y]}
        _dump(_batch(name, x, labels), os.path.join(folder, name))
    _dump({b"fine_label_names": [f"class_{i}".encode() for i in range(100)],
           b"coarse_label_names": [f"super_{i}".encode() for i in range(20)]},
          os.path.join(folder, "meta"))
    return dict(dir=folder, train_images=tr_x, train_labels=tr_y,
                test_images=te_x, test_labels=te_y)
