"""Test accuracy of a checkpoint and its ranked list of suspect training labels.

    python evaluate.py -r saved/<name>/<run>/model_best.pth [--data_dir DIR] [--out FILE.csv] [--amp MODE]

Rebuilds the run's data from the config stored in the checkpoint (same noisy
labels, subset and split), runs the network once over the un-augmented
training images, takes that pass into the checkpoint's average of the
training-time probabilities (as the run does at its end) and writes the ranked
CSV (default: ``label_issues_<checkpoint name>.csv`` next to the checkpoint, so
the run's own ``label_issues.csv`` is kept) plus a JSON of the same name with
the summary and the test accuracy.
Bad input ends with a one-line message and exit code 2.
"""
import argparse
import json
import os
import sys
from typing import NamedTuple

import torch

from data_loader.build import build_data
from model.metrics import accuracy
from model.networks import build_arch
from parse_config import complete_config
from trainer.checkpoint import check_fits, find_resume_checkpoint, load_checkpoint
from trainer.noise_monitor import (CSV_COLUMNS, averaged_probs, export_label_issues, predict_probs, summary_path,
                                   training_set_loader)
from utils.errors import CheckpointError, ConfigError, UserError
from utils.runtime import autocast, resolve_amp, resolve_channels_last, resolve_device, to_layout


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError(f"command line: {message}")


def parse(argv):
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--resume", required=True, help="checkpoint file or run directory")
    parser.add_argument("--data_dir", help="where the dataset is, if not where the run found it")
    parser.add_argument("--out", help="CSV path (default: label_issues_<checkpoint name>.csv next to it)")
    parser.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"),
                        help="autocast mode (default: the run's trainer.amp, resolved for this device)")
    return parser.parse_args(argv)


def default_csv_path(checkpoint_path):
    stem = os.path.splitext(os.path.basename(checkpoint_path))[0]
    return os.path.join(os.path.dirname(os.path.abspath(checkpoint_path)), f"label_issues_{stem}.csv")


class CheckpointPredictions(NamedTuple):
    data: object                 # the run's data, rebuilt from the checkpoint's config
    state: dict                  # the checkpoint
    train_probs: torch.Tensor    # (N, C): one un-augmented pass over the training images
    avg_probs: torch.Tensor      # that pass taken into the checkpoint's average (None when it holds none)
    test_probs: torch.Tensor     # (N_test, C)
    test_labels: torch.Tensor

    @property
    def test_accuracy(self):
        return accuracy(self.test_probs, self.test_labels)


def checkpoint_predictions(checkpoint_path, data_dir=None, amp_setting=None):
    """A checkpoint's predictions on its run's training and test images (CheckpointPredictions)."""
    device = resolve_device()
    state = load_checkpoint(checkpoint_path, map_location=device)
    try:
        config = complete_config(state["config"])
    except ConfigError as err:
        raise CheckpointError(f"{checkpoint_path}: its config: {err}") from None
    if data_dir is not None:
        config["data_loader"]["data_dir"] = data_dir
    data = build_data(config, device)
    check_fits(state, data, config["arch"]["type"], checkpoint_path)
    model = build_arch(config["arch"]["type"], data.num_classes, config["arch"]["args"]).to(device)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"{checkpoint_path} does not fit {config['arch']['type']}: "
                              f"{str(err).splitlines()[0]}") from None
    # the run's precision and layout settings, resolved for this device: on the machine that trained
    # it, the same predictions as the run's own end-of-run pass
    amp = resolve_amp(amp_setting or config["trainer"]["amp"], device)
    channels_last = resolve_channels_last(config["trainer"]["channels_last"], device)
    model = to_layout(model, channels_last)
    run_as_trained = dict(autocast=lambda: autocast(device, amp), prepare=lambda x: to_layout(x, channels_last))
    test_probs, test_labels = predict_probs(model, model, data.test_loader, **run_as_trained)
    train_probs, _ = predict_probs(model, model, training_set_loader(data, data.eval_batch_size, device),
                                   **run_as_trained)
    monitor = next((s for s in state.get("callbacks") or () if s and "prob_ema" in s), None)
    return CheckpointPredictions(data, state, train_probs, averaged_probs(monitor, train_probs),
                                 test_probs, test_labels)


def _is_label_issue_csv(path):
    header = ",".join(CSV_COLUMNS[:5]).encode()   # exports before the class-name columns end there
    with open(path, "rb") as f:
        return f.read(len(header)) == header


def _is_label_issue_summary(path):
    try:
        with open(path) as f:
            return "flag_rule" in json.load(f)
    except (OSError, ValueError, TypeError):
        return False


def evaluate(checkpoint_path, data_dir=None, out=None, amp_setting=None):
    """Write the label-issue CSV + JSON for a checkpoint; returns the summary dict."""
    path = out or default_csv_path(checkpoint_path)
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise ConfigError(f"--out {path}: its directory does not exist")
    if summary_path(path) == path:
        raise ConfigError(f"--out {path}: the summary is written to the CSV's name with .json, so the CSV "
                          f"cannot end in .json")
    for target, is_export in ((path, _is_label_issue_csv), (summary_path(path), _is_label_issue_summary)):
        if os.path.isfile(target) and not is_export(target):   # e.g. --out RUN/results.csv or RUN/train.log
            raise ConfigError(f"{'--out ' if out else 'output '}{path}: would replace {target}, which is not "
                              f"a label-issue export")
    pred = checkpoint_predictions(checkpoint_path, data_dir, amp_setting)
    try:
        return export_label_issues(path, pred.data, pred.train_probs, pred.avg_probs, extra={
            "checkpoint": os.path.abspath(checkpoint_path), "epoch": int(pred.state["epoch"]),
            "test_accuracy": pred.test_accuracy, "csv": path})
    except OSError as err:
        raise ConfigError(f"cannot write {path}: {err.strerror}") from None


def main(argv=None):
    try:
        args = parse(argv)
        summary = evaluate(find_resume_checkpoint(args.resume), args.data_dir, args.out, args.amp)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
