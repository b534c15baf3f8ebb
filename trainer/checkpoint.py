"""Atomic checkpoint writing and safe loading.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so
it loads with ``torch.load(weights_only=True)``: no code stored in a checkpoint
is ever executed. Writes go to a temporary file that is fsynced and renamed
over the target, so a kill at any moment leaves the previous file intact.

``epoch`` counts finished epochs; a checkpoint written by a stop in the middle
of an epoch also has ``progress`` (see Trainer.train_epoch) with the epoch and
the number of steps done in it.
"""
import glob
import os
import pickle
import warnings
import zipfile

import torch

from utils.atomic import atomic_open
from utils.errors import CheckpointError

LATEST = "checkpoint-latest.pth"
BEST = "model_best.pth"
# torch's weights-only errors wrap the one informative line in advice to use weights_only=False
_BOILERPLATE = ("Weights only load failed", "In PyTorch 2.6", "Re-running", "Please file an issue",
                "Check the documentation", "WeightsUnpickler error")


def save_atomic(state, path):
    with atomic_open(path, "wb") as f:
        torch.save(state, f)


def _reason(err):
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip() and not ln.strip().startswith(_BOILERPLATE)]
    return (lines[0] if lines else type(err).__name__)[:200]


def load_checkpoint(path, map_location="cpu"):
    """Load with weights_only=True; any failure is a one-line CheckpointError naming ``path``."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip()  # CRC of every record: catches flipped bytes in tensor data
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise CheckpointError(f"checkpoint {path} is corrupt or truncated: {_reason(err)}") from None
        if damaged is not None:
            raise CheckpointError(f"checkpoint {path} is corrupt: record {damaged} fails its CRC check")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "pickle protocol 4" notes on foreign files
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = _reason(err)
        if "GLOBAL" in reason or "global" in reason:
            raise CheckpointError(f"refusing checkpoint {path}: it holds objects other than tensors and plain "
                                  f"data, which could run code when loaded ({reason})") from None
        raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint: {reason}") from None
    except Exception as err:  # garbage bytes reach the unpickler's internals: IndexError, KeyError, ...
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated: {_reason(err)}") from None
    if not (isinstance(state, dict) and isinstance(state.get("config"), dict)
            and isinstance(state.get("epoch"), int)):
        raise CheckpointError(f"{path} is not a checkpoint of this project (no config/epoch)")
    return state


def checkpoint_position(state):
    """(finished epochs, steps done in the next epoch): how far training had got."""
    progress = state.get("progress")
    return int(state["epoch"]), int(progress["step"]) if progress else 0


def find_resume_checkpoint(path):
    """A checkpoint file as given, or for a run directory its furthest valid checkpoint.

    Unreadable candidates are skipped; ties go to the newest file."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise CheckpointError(f"resume path not found: {path}")
    candidates = glob.glob(os.path.join(path, "checkpoint-*.pth"))
    candidates.sort(key=os.path.getmtime, reverse=True)
    best_position, best_path, reasons = None, None, []
    for candidate in candidates:
        try:
            position = checkpoint_position(load_checkpoint(candidate))
        except CheckpointError as err:
            reasons.append(str(err))
            continue
        if best_position is None or position > best_position:
            best_position, best_path = position, candidate
    if best_path is None:
        detail = f" ({'; '.join(reasons)})" if reasons else ""
        raise CheckpointError(f"no valid checkpoint in {path}{detail}")
    return best_path


def check_fits(state, data, arch, path):
    """Refuse a checkpoint ``state`` that another network ``arch`` or other training images made: its
    u, v and noise-monitor rows would belong to other images. Other images or labels often keep the
    row count (another seed's subset, another noise draw, files moved in a folder), so the digest of
    the rows is compared too (checkpoints written before CIFAR runs had one are not checked)."""
    if state.get("num_train") != data.num_train or state.get("arch") != arch:
        raise CheckpointError(f"{path} was trained with {state.get('arch')} on {state.get('num_train')} samples; "
                              f"this config has {arch} on {data.num_train}")
    saved = state.get("data_fingerprint")
    if saved is None or saved == data.fingerprint:
        return
    if data.train_files is not None:
        raise CheckpointError(f"{path}: the image folder changed since this checkpoint (files added, removed, "
                              f"renamed or moved between classes), so its per-image state belongs to other "
                              f"images; start a new run on the changed folder")
    raise CheckpointError(f"{path}: the training rows differ from the checkpoint's (other images or other given "
                          f"labels: another CIFAR-N label file, or a copy of the dataset in another order), so "
                          f"its per-image state belongs to other samples; resume with the files it was trained on")
