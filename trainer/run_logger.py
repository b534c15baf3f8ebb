"""Where a run's numbers go: console + train.log, metrics.jsonl, tensorboard.

All per-epoch scalars share one x-axis, the epoch (1-based). On resume the
metrics file is cut back to the checkpoint's epoch and tensorboard purges
later steps, so every epoch appears exactly once.
"""
import json
import logging
import math
import os
import sys

from utils.atomic import atomic_open


def make_text_logger(run_dir, name="sop"):
    logger = logging.getLogger(f"{name}.{os.path.abspath(run_dir)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not logger.handlers:
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(logging.Formatter("%(message)s"))
        logfile = logging.FileHandler(os.path.join(run_dir, "train.log"))
        logfile.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(console)
        logger.addHandler(logfile)
    return logger


def close_text_logger(logger):
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)


def _epoch_of(line):
    """The epoch of a metrics.jsonl line; None for a blank or torn one."""
    try:
        return json.loads(line).get("epoch", 0)
    except (json.JSONDecodeError, AttributeError):
        return None


class MetricsWriter:
    """One JSON object per epoch in metrics.jsonl, mirrored to tensorboard."""

    def __init__(self, run_dir, tensorboard=True, start_epoch=0):
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self._truncate_after(start_epoch)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=run_dir, purge_step=start_epoch + 1 if start_epoch else None)

    def _truncate_after(self, epoch):
        """Keep the rows up to ``epoch``; a line that is not JSON (the last one, torn by a kill
        during its write) is dropped with them. Replaced whole, so a kill here loses nothing."""
        if not os.path.exists(self.path):
            return
        with open(self.path) as f:
            rows = [line for line in f if (row_epoch := _epoch_of(line)) is not None and row_epoch <= epoch]
        with atomic_open(self.path) as f:
            f.writelines(rows)

    def write(self, epoch, scalars):
        """Append the epoch's row; a value that is not a finite number (e.g. the detection AUROC of a
        run without wrong labels) is written as null, so that every line is strict JSON."""
        row = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in scalars.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps({"epoch": epoch, **row}, allow_nan=False) + "\n")
        if self.writer is not None:
            for key, value in scalars.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key, value, epoch)
            self.writer.flush()

    def add_image(self, tag, image_chw, epoch):
        if self.writer is not None:
            self.writer.add_image(tag, image_chw, epoch)

    def add_histogram(self, tag, values, epoch):
        if self.writer is not None:
            self.writer.add_histogram(tag, values, epoch)

    def close(self):
        if self.writer is not None:
            self.writer.close()
