"""Atomic checkpoint writing and safe loading.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so
it loads with ``torch.load(weights_only=True)``: no code stored in a checkpoint
is ever executed. Writes go to a temporary file that is fsynced and renamed
over the target, so a kill at any moment leaves the previous file intact.
"""
import glob
import os
import pickle
import tempfile
import zipfile

import torch

from utils.errors import CheckpointError

LATEST = "checkpoint-latest.pth"
BEST = "model_best.pth"


def save_atomic(state, path):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pth", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path, map_location="cpu"):
    """Load with weights_only=True; any failure is a one-line CheckpointError."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(f"refusing checkpoint {path}: it holds objects other than tensors "
                                  f"and plain data ({first[:160]})") from None
        raise CheckpointError(f"checkpoint {path} is corrupt: {first[:200]}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated: {first[:200]}") from None
    if not isinstance(state, dict) or "config" not in state or "epoch" not in state:
        raise CheckpointError(f"{path} is not a checkpoint of this project (no config/epoch)")
    return state


def find_resume_checkpoint(path):
    """A checkpoint file as given, or for a run directory its newest valid checkpoint."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise CheckpointError(f"resume path not found: {path}")
    candidates = glob.glob(os.path.join(path, "checkpoint-*.pth"))
    candidates.sort(key=os.path.getmtime, reverse=True)
    best_epoch, best_path, reasons = -1, None, []
    for candidate in candidates:
        try:
            epoch = load_checkpoint(candidate)["epoch"]
        except CheckpointError as err:
            reasons.append(str(err))
            continue
        if epoch > best_epoch:
            best_epoch, best_path = epoch, candidate
    if best_path is None:
        detail = f" ({'; '.join(reasons)})" if reasons else ""
        raise CheckpointError(f"no valid checkpoint in {path}{detail}")
    return best_path


def read_checkpoint_config(path):
    return load_checkpoint(path)["config"]
