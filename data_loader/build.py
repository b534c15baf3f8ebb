"""Assemble a run's data from the config: dataset, noisy labels, splits, loaders.

Noise is made on the full training set (so the same noise.seed gives the same
labels whatever subset or split is used), then the subset / validation split
is taken. Positions 0..n_train-1 of the training part are the rows of u and v;
``train_index`` maps them back to indices in the original training set. A
``folder`` dataset (your own images) without synthetic noise has no clean labels:
``train_clean``, ``noise_rate`` and ``transition`` are None.
"""
import hashlib
import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from data_loader.cifar import load_cifar
from data_loader.cifar_n import load_cifar_n
from data_loader.image_folder import load_image_folder
from data_loader.loaders import DeviceLoader, PILLoader
from data_loader.noise import make_noisy_labels, realised_noise_rate, transition_matrix
from data_loader.split import stratified_split, stratified_subset
from utils.config_schema import makes_no_noise
from utils.errors import ConfigError
from utils.runtime import resolve_eval_batch_size


@dataclass
class RunData:
    train_loader: Any
    val_loader: Optional[Any]
    test_loader: Any
    num_classes: int
    class_names: list
    train_index: np.ndarray          # original training-set index of each training position
    train_noisy: torch.Tensor        # given labels of the training positions (on device)
    train_clean: Optional[torch.Tensor]   # None: the true labels are unknown
    images_u8: np.ndarray            # training images (n_train, H, W, 3), for visualisation
    noise_rate: Optional[float]
    transition: Optional[np.ndarray]
    label_record: dict               # what labels.npz holds
    eval_batch_size: int             # resolved from the config ("auto" depends on the device)
    mean: tuple                      # normalisation of the images
    std: tuple
    train_files: Optional[list] = None   # folder datasets: each training position's image path
    skipped_files: int = 0               # folder datasets: training files that are not images
    fingerprint: Optional[str] = None    # `rows_digest` of the training positions

    def save_labels(self, run_dir):
        np.savez_compressed(os.path.join(run_dir, "labels.npz"), **self.label_record)

    @property
    def num_train(self):
        return len(self.train_index)


def rows_digest(keys, labels):
    """A digest of each training position's image (its path in a folder dataset, its index in the
    original training set otherwise) and given label. A checkpoint keeps it: its u, v and averages
    belong to those rows, which a changed folder, seed, noise, subset or split reorders or relabels
    without changing their number."""
    digest = hashlib.sha256()
    for key, label in zip(keys, labels):
        digest.update(f"{key}\t{int(label)}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def noisy_labels_for(config, cifar):
    """(noisy, clean) labels of the whole original training set; clean is None for a folder
    dataset without synthetic noise (its labels are the given ones, their truth unknown)."""
    noise, loader_cfg = config["noise"], config["data_loader"]
    if loader_cfg["dataset"] == "folder" and makes_no_noise(noise):
        return cifar.train_labels, None
    seed = noise["seed"] if noise["seed"] is not None else config["seed"]
    if noise["type"] == "human":
        noisy, clean = load_cifar_n(loader_cfg["dataset"], noise["label_set"], noise["file"],
                                    loader_cfg["data_dir"], loader_cfg["download"],
                                    expected_len=len(cifar.train_labels), train_labels=cifar.train_labels)
        return noisy, cifar.train_labels
    noisy = make_noisy_labels(cifar.train_labels, noise["type"], noise["rate"], cifar.num_classes, seed,
                              images=cifar.train_images, dataset=loader_cfg["dataset"])
    return noisy, cifar.train_labels


def split_indices(config, clean, noisy):
    """Training and validation indices into the original training set."""
    loader_cfg = config["data_loader"]
    index = np.arange(len(noisy))
    if loader_cfg["train_subset"]:
        # a benchmark-building tool: balanced in the true classes (where they are known)
        index = stratified_subset(clean if clean is not None else noisy, loader_cfg["train_subset"], config["seed"])
    val_index = None
    if loader_cfg["validation_split"] > 0:
        # a user only has the given labels, so the split is stratified on them
        fraction = loader_cfg["validation_split"]
        train_pos, val_pos = stratified_split(noisy[index], fraction, config["seed"])
        if not len(val_pos):
            raise ConfigError(f"data_loader.validation_split {fraction} puts no image in the validation set: it "
                              f"takes round({fraction} x n) of the n images given each label, and the largest n "
                              f"is {int(np.bincount(noisy[index]).max())}")
        index, val_index = index[train_pos], index[val_pos]
    if len(index) < 2:   # BatchNorm trains on two images at least
        raise ConfigError(f"the training set has {len(index)} image(s) after data_loader.train_subset and "
                          f"validation_split; training needs at least 2")
    return index, val_index


def build_data(config, device, rank=0, world_size=1):
    loader_cfg, device = config["data_loader"], torch.device(device)
    files, skipped = None, 0
    if loader_cfg["dataset"] == "folder":
        cifar, files, skipped = load_image_folder(loader_cfg["data_dir"])
    else:
        cifar = load_cifar(loader_cfg["dataset"], loader_cfg["data_dir"], loader_cfg["download"])
    noisy, clean = noisy_labels_for(config, cifar)
    train_index, val_index = split_indices(config, clean, noisy)
    transition = transition_matrix(clean, noisy, cifar.num_classes) if clean is not None else None
    record = dict(noisy_labels=noisy, train_index=train_index,
                  val_index=val_index if val_index is not None else np.zeros(0, np.int64))
    if clean is not None:
        record.update(clean_labels=clean, transition_matrix=transition)
    train_files = None
    if files is not None:
        record["files"] = np.asarray(files)
        train_files = [files[i] for i in train_index]

    cls = PILLoader if loader_cfg["pipeline"] == "pil" else DeviceLoader
    extra = {"num_workers": loader_cfg["num_workers"]} if cls is PILLoader else {}
    strong = config["train_loss"]["type"] == "sop" and config["train_loss"]["args"].get("ratio_consistency", 0) > 0
    common = dict(mean=cifar.mean, std=cifar.std, device=device, **extra)
    train_loader = cls(cifar.train_images[train_index], noisy[train_index], batch_size=loader_cfg["batch_size"],
                       train=True, strong_view=strong, seed=config["seed"], rank=rank, world_size=world_size,
                       **common)
    eval_bs = resolve_eval_batch_size(loader_cfg["eval_batch_size"], device)
    val_loader = None
    if val_index is not None:
        val_loader = cls(cifar.train_images[val_index], noisy[val_index], batch_size=eval_bs, train=False, **common)
    test_loader = cls(cifar.test_images, cifar.test_labels, batch_size=eval_bs, train=False, **common)
    return RunData(
        train_loader=train_loader, val_loader=val_loader, test_loader=test_loader,
        num_classes=cifar.num_classes, class_names=cifar.class_names, train_index=train_index,
        train_noisy=torch.as_tensor(noisy[train_index], device=device),
        train_clean=torch.as_tensor(clean[train_index], device=device) if clean is not None else None,
        images_u8=cifar.train_images[train_index],
        noise_rate=realised_noise_rate(clean, noisy) if clean is not None else None, transition=transition,
        label_record=record, eval_batch_size=eval_bs, mean=cifar.mean, std=cifar.std,
        train_files=train_files, skipped_files=skipped,
        fingerprint=rows_digest(train_files if train_files is not None else train_index.tolist(), noisy[train_index]))
