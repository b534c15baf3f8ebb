"""Read your own labelled images: ``data_dir/train/<class>/<image>`` and ``data_dir/test/<class>/<image>``.

The folder a training image sits in is its given label; whether it is right is
unknown. Class ids follow the sorted names of ``train/``'s class folders; every
class folder of ``test/`` must be one of them. Images are read with PIL, made RGB
and brought to 32x32 like CIFAR (the networks and augmentation expect that): the
shorter side resized to 32 (Lanczos), the longer one centre-cropped. Channel mean
and std for normalisation come from the training images.
"""
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from data_loader.cifar import CifarData
from utils.errors import DataError

SIZE = 32
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


def _visible(names):
    return sorted(n for n in names if not n.startswith("."))


def list_images(split_dir, class_names=None):
    """(relative paths, labels) of the images under ``split_dir``/<class>/, sorted by class
    then file name; ``class_names`` (the training classes) maps folder names to ids."""
    if not os.path.isdir(split_dir):
        raise DataError(f"folder dataset: expected {split_dir}/<class name>/<images> (not found)")
    folders = [n for n in _visible(os.listdir(split_dir)) if os.path.isdir(os.path.join(split_dir, n))]
    if not folders:
        raise DataError(f"folder dataset: {split_dir} has no class folders")
    names = class_names if class_names is not None else folders
    unknown = sorted(set(folders) - set(names))
    if unknown:
        raise DataError(f"folder dataset: {split_dir} has classes that train/ has not: {', '.join(unknown)}")
    paths, labels = [], []
    for name in folders:
        files = [f for f in _visible(os.listdir(os.path.join(split_dir, name)))
                 if f.lower().endswith(EXTENSIONS)]
        if not files and class_names is None:
            raise DataError(f"folder dataset: class folder {os.path.join(split_dir, name)} holds no images "
                            f"({', '.join(EXTENSIONS)})")
        paths += [os.path.join(name, f) for f in files]
        labels += [names.index(name)] * len(files)
    return paths, np.asarray(labels, np.int64)


def to_cifar_size(image):
    """An RGB PIL image as uint8 (32, 32, 3): shorter side to 32, centre crop."""
    image = image.convert("RGB")
    width, height = image.size
    scale = SIZE / min(width, height)
    new_w, new_h = max(SIZE, round(width * scale)), max(SIZE, round(height * scale))
    image = image.resize((new_w, new_h), Image.LANCZOS)
    left, top = (new_w - SIZE) // 2, (new_h - SIZE) // 2
    return np.asarray(image.crop((left, top, left + SIZE, top + SIZE)), np.uint8)


def read_images(root, paths):
    out = np.empty((len(paths), SIZE, SIZE, 3), np.uint8)
    for i, path in enumerate(paths):
        full = os.path.join(root, path)
        try:
            with Image.open(full) as image:
                out[i] = to_cifar_size(image)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise DataError(f"folder dataset: cannot read image {full}: {err}") from None
    return out


def channel_stats(images, chunk=4096):
    """Per-channel mean and std of uint8 (N, H, W, 3) images scaled to [0, 1], in chunks (a float
    copy of 50,000 images would take 1.2 GB)."""
    total, squares, count = np.zeros(3), np.zeros(3), 0
    for start in range(0, len(images), chunk):
        pixels = images[start:start + chunk].reshape(-1, 3).astype(np.float64) / 255.0
        total += pixels.sum(axis=0)
        squares += (pixels ** 2).sum(axis=0)
        count += len(pixels)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    # a constant channel must not divide by zero
    return tuple(float(m) for m in mean), tuple(float(max(s, 1e-3)) for s in std)


def load_image_folder(data_dir):
    """(CifarData-shaped images and labels, training images' paths relative to ``data_dir``)."""
    train_dir, test_dir = os.path.join(data_dir, "train"), os.path.join(data_dir, "test")
    train_paths, train_labels = list_images(train_dir)
    class_names = [n for n in _visible(os.listdir(train_dir)) if os.path.isdir(os.path.join(train_dir, n))]
    if len(class_names) < 2:
        raise DataError(f"folder dataset: {train_dir} needs at least 2 class folders, found {len(class_names)}")
    test_paths, test_labels = list_images(test_dir, class_names)
    if not test_paths:
        raise DataError(f"folder dataset: {test_dir} holds no images; test accuracy needs some "
                        f"(move a share of each class there: their labels are taken as right)")
    train_images = read_images(train_dir, train_paths)
    test_images = read_images(test_dir, test_paths)
    mean, std = channel_stats(train_images)
    data = CifarData(train_images, train_labels, test_images, test_labels, len(class_names), class_names, mean, std)
    return data, [os.path.join("train", p) for p in train_paths]
