"""Read your own labelled images: ``data_dir/train/<class>/...`` and ``data_dir/test/<class>/...``.

The class folder an image sits in (at any depth below it) is its given label;
whether it is right is unknown. Class ids follow the sorted names of
``train/``'s class folders; every class folder of ``test/`` must be one of them.
Images are read with PIL, turned upright by their EXIF orientation, made RGB
(transparency shown on white, 16-bit and float greyscale scaled to 8 bits) and
brought to 32x32 like CIFAR, which the networks and augmentation expect: the
shorter side resized to 32 (Lanczos), the longer one centre-cropped. Channel
mean and std for normalisation come from the training images.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from data_loader.cifar import CifarData
from utils.errors import DataError

SIZE = 32
# the common ones this Pillow can open (.avif needs Pillow 11.2 or newer)
EXTENSIONS = tuple(e for e in (".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                               ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".avif")
                   if e in Image.registered_extensions())


def _listdir(path):
    try:
        return sorted(name for name in os.listdir(path) if not name.startswith("."))
    except OSError as err:
        raise DataError(f"folder dataset: cannot list {path}: {err.strerror}") from None


def class_folders(split_dir):
    if not os.path.isdir(split_dir):
        raise DataError(f"folder dataset: expected {split_dir}/<class name>/<images> (not found)")
    return [n for n in _listdir(split_dir) if os.path.isdir(os.path.join(split_dir, n))]


def _files_below(folder, root=None, visited=()):
    """Every non-hidden file below ``folder`` as "/"-separated paths relative to it, sorted by name
    at each level. A linked folder is followed only when it lies inside the class folder ``root``
    (a link to another class would label its images twice) and not yet on the way down (a loop)."""
    root = root or os.path.realpath(folder)
    visited = {*visited, os.path.realpath(folder)}
    found = []
    for name in _listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            real = os.path.realpath(path)
            if real not in visited and (real == root or real.startswith(root + os.sep)):
                found += [f"{name}/{below}" for below in _files_below(path, root, visited)]
        else:
            found.append(name)
    return found


def list_images(split_dir, class_names, every_class=False):
    """(relative paths, labels, number of other files skipped) of the images under
    ``split_dir``/<class>/, class by class in `_files_below` order; ids are positions in
    ``class_names`` (the training classes). ``every_class``: each must hold an image. Files
    directly in ``split_dir`` are ignored."""
    folders = class_folders(split_dir)
    if not folders:
        raise DataError(f"folder dataset: {split_dir} has no class folders")
    unknown = sorted(set(folders) - set(class_names))
    if unknown:
        raise DataError(f"folder dataset: {split_dir} has classes that train/ has not: {', '.join(unknown)}")
    paths, labels, skipped = [], [], 0
    for name in folders:
        files = _files_below(os.path.join(split_dir, name))
        images = [f for f in files if f.lower().endswith(EXTENSIONS)]
        skipped += len(files) - len(images)
        if not images and every_class:
            raise DataError(f"folder dataset: class folder {os.path.join(split_dir, name)} holds no images "
                            f"({', '.join(EXTENSIONS)})")
        paths += [f"{name}/{f}" for f in images]
        labels += [class_names.index(name)] * len(images)
    return paths, np.asarray(labels, np.int64), skipped


def _eight_bit(image):
    """16-bit / 32-bit integer and float greyscale as 8-bit "L" (PIL's convert would clip them)."""
    values = np.asarray(image, np.float64)
    if image.mode == "F":
        values = values * 255 if values.max(initial=0) <= 1 else values
    elif image.mode.startswith("I;16") or values.max(initial=0) > 255:
        values = values / 257           # 16-bit range 0..65535 onto 0..255 (older Pillow opens those as "I")
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def to_rgb(image):
    image = ImageOps.exif_transpose(image)
    if image.mode in ("F", "I") or image.mode.startswith("I;16"):
        image = _eight_bit(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:   # alpha or a colour key
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def to_cifar_size(image):
    """An opened PIL image as upright RGB uint8 (32, 32, 3): shorter side to 32, centre crop."""
    image.draft("RGB", (2 * SIZE, 2 * SIZE))   # JPEG: decode at a reduced scale (7x faster for photos)
    image = to_rgb(image)
    width, height = image.size
    scale = SIZE / min(width, height)
    new_w, new_h = max(SIZE, round(width * scale)), max(SIZE, round(height * scale))
    image = image.resize((new_w, new_h), Image.LANCZOS)
    left, top = (new_w - SIZE) // 2, (new_h - SIZE) // 2
    return np.asarray(image.crop((left, top, left + SIZE, top + SIZE)), np.uint8)


def _read_one(full):
    try:
        with Image.open(full) as image:
            return to_cifar_size(image)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"folder dataset: cannot read image {full!r}: {err}") from None


def read_images(root, paths, threads=None):
    """uint8 (N, 32, 32, 3) of ``paths`` under ``root``, decoded by a thread pool (PIL releases the
    GIL while it decodes and resizes)."""
    out = np.empty((len(paths), SIZE, SIZE, 3), np.uint8)
    with ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1)) as pool:
        for i, pixels in enumerate(pool.map(_read_one, [os.path.join(root, p) for p in paths])):
            out[i] = pixels
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
    """(CifarData-shaped images and labels, training images' paths relative to ``data_dir``,
    number of training files skipped as not images)."""
    train_dir, test_dir = os.path.join(data_dir, "train"), os.path.join(data_dir, "test")
    class_names = class_folders(train_dir)
    if len(class_names) < 2:
        raise DataError(f"folder dataset: {train_dir} needs at least 2 class folders, found {len(class_names)}")
    train_paths, train_labels, skipped = list_images(train_dir, class_names, every_class=True)
    test_paths, test_labels, _ = list_images(test_dir, class_names)
    if not test_paths:
        raise DataError(f"folder dataset: {test_dir} holds no images; test accuracy needs some "
                        f"(move a share of each class there: their labels are taken as right)")
    train_images = read_images(train_dir, train_paths)
    test_images = read_images(test_dir, test_paths)
    mean, std = channel_stats(train_images)
    data = CifarData(train_images, train_labels, test_images, test_labels, len(class_names), class_names, mean, std)
    return data, [f"train/{p}" for p in train_paths], skipped
