"""Which per-sample score ranks the wrong labels best: many candidates, every epoch of real runs.

    python benchmarks/detection_scores.py --data-dir data/ --settings sym50 --methods ce,sop,oracle

Trains the runs of benchmarks/accuracy.py (same options and defaults, same seeds, in this
script's --work-dir), one after another in this process, with the run's noise monitor
recording every epoch the probability of the given label and of the strongest other class,
from the training-time logits and, with --clean-pass, from an un-augmented eval-mode pass
over the training set (one more pass over the training images per epoch). Every candidate below estimates
how wrong the given label is (higher = more suspect) and is scored by detection AUROC
against the true noise mask at the --report epochs; two more rows give the share of the
clean and of the wrong training labels the network fits (argmax = given label):

- ``loss``: 1 - p_given of that epoch (the small-loss criterion).
- ``loss_ema<m>``: 1 - the bias-corrected moving average of p_given with momentum m per
  epoch; ``loss_ema0.9`` is the trainer's ``loss_avg`` (model.label_issues).
- ``loss_mean_all``: 1 - p_given averaged over every epoch so far.
- ``margin_ema0.9``, ``margin_mean_all``: minus (p_given - max other p), averaged as named;
  the mean over all epochs is the area under the margin (AUM) of Pleiss et al. 2020, in
  probabilities.
- ``loss_ema0.9_class_centred``: ``loss_ema0.9`` minus its mean over the samples given the
  same label (per-class thresholds, as confident learning uses).
- ``u2``: SOP's clamp(u^2, 0, 1), the trainer's ``u2``; ``u2_unclamped``: u^2 itself, which
  keeps the order of the samples the clamp ties at 1 (SOP runs only).
- ``clean_*``: the same from the un-augmented pass (--clean-pass).
"""
import argparse
import os
import sys

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks import accuracy  # noqa: E402

EMA_MOMENTA = (0.8, 0.9, 0.95, 0.98)


def ema(values, momentum):
    """Bias-corrected exponential moving average over the first axis (epochs) of ``values``."""
    average = np.zeros(values.shape[1:])
    for value in values:
        average = momentum * average + (1 - momentum) * value
    return average / (1 - momentum ** len(values))


def class_centred(scores, given):
    """``scores`` minus their mean over the samples with the same given label."""
    out = np.asarray(scores, np.float64).copy()
    for label in np.unique(given):
        out[given == label] -= out[given == label].mean()
    return out


def candidate_scores(p_given, p_rival, given, prefix=""):
    """name -> (N,) score from the per-epoch (E, N) probabilities of the given label and of
    the most probable other class, epochs 1..E."""
    margin = p_given - p_rival
    scores = {f"{prefix}loss": 1 - p_given[-1]}
    for m in EMA_MOMENTA:
        scores[f"{prefix}loss_ema{m}"] = 1 - ema(p_given, m)
    scores[f"{prefix}loss_mean_all"] = 1 - p_given.mean(axis=0)
    scores[f"{prefix}margin_ema0.9"] = -ema(margin, 0.9)
    scores[f"{prefix}margin_mean_all"] = -margin.mean(axis=0)
    scores[f"{prefix}loss_ema0.9_class_centred"] = class_centred(scores[f"{prefix}loss_ema0.9"], given)
    return scores


def given_and_rival(probs, given):
    """(p of the given label, p of the most probable other class) as float32 numpy arrays (a full-length
    all-data run keeps 2-4 of them per epoch)."""
    p_given = probs.gather(1, given.view(-1, 1)).squeeze(1)
    rival = probs.scatter(1, given.view(-1, 1), -1.0).max(dim=1).values
    return p_given.float().cpu().numpy(), rival.float().cpu().numpy()


class EpochRecorder:
    """A trainer callback (`train.main(argv, callbacks=[...])`) that keeps each epoch's
    probabilities: the noise monitor's training-time logits, read after it, and optionally an
    un-augmented pass."""

    def __init__(self, clean_pass):
        self.clean_pass = clean_pass
        self.epochs = []      # per epoch: dict of (N,) arrays
        self.given = self.clean = None

    def on_epoch_end(self, epoch, trainer):
        from trainer import noise_monitor as nm
        monitor = next(cb for cb in trainer.callbacks if isinstance(cb, nm.NoiseMonitor))
        given = monitor.data.train_noisy
        self.given, self.clean = given.cpu().numpy(), monitor.data.train_clean.cpu().numpy()
        row = dict(zip(("p_given", "p_rival"), given_and_rival(monitor.logits.float().softmax(dim=1), given)))
        if self.clean_pass:
            loader = nm.training_set_loader(monitor.data, monitor.data.eval_batch_size, trainer.device)
            probs, _ = nm.predict_probs(trainer.forward, trainer.model, loader, trainer._autocast,
                                        trainer._prepare)
            row["clean_p_given"], row["clean_p_rival"] = given_and_rival(probs, given)
        if trainer.sop is not None:
            row["u2"] = (trainer.sop.u.detach().view(-1).float() ** 2).cpu().numpy()
        self.epochs.append(row)

    def report(self, epoch):
        """name -> detection AUROC at ``epoch`` (1-based), plus the fitted shares."""
        from model.metrics import auroc
        rows = self.epochs[:epoch]
        stacked = {key: np.stack([row[key] for row in rows]) for key in rows[-1]}
        scores = candidate_scores(stacked["p_given"], stacked["p_rival"], self.given)
        if "clean_p_given" in stacked:
            scores.update(candidate_scores(stacked["clean_p_given"], stacked["clean_p_rival"], self.given, "clean_"))
        if "u2" in stacked:
            scores["u2"] = np.clip(stacked["u2"][-1], 0, 1)
            scores["u2_unclamped"] = stacked["u2"][-1]
        wrong = torch.as_tensor(self.given != self.clean)
        result = {name: auroc(torch.as_tensor(values), wrong) for name, values in scores.items()}
        fitted = stacked["p_given"][-1] > stacked["p_rival"][-1]
        result["fits clean labels"] = float(fitted[~wrong.numpy()].mean())
        result["fits wrong labels"] = float(fitted[wrong.numpy()].mean()) if wrong.any() else float("nan")
        return result


def report_epochs(wanted, epochs):
    """The epochs to report: ``wanted`` (default every 10th) and always the last one."""
    return sorted(set(wanted or range(10, epochs, 10)) | {epochs})


def epoch_list(text):
    try:
        return [int(e) for e in text.split(",") if e.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of epochs; got {text!r}") from None


def markdown(name, reports):
    epochs = list(reports)
    lines = [f"**{name}**", "", "| score | " + " | ".join(f"epoch {e}" for e in epochs) + " |",
             "|---|" + "---|" * len(epochs)]
    for key in reports[epochs[-1]]:
        values = [reports[e][key] for e in epochs]
        cells = ["—" if v is None else f"{100 * v:.1f}%" if key.startswith("fits") else f"{v:.3f}" for v in values]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_parser():
    p = accuracy.in_process_parser(__doc__, settings=["sym50"], methods=["ce", "sop"],
                                   work_dir="saved/detection_scores", out="saved/detection_scores/table.md")
    p.add_argument("--clean-pass", action="store_true", help="also score an un-augmented pass every epoch")
    p.add_argument("--report", type=epoch_list, default=[],
                   help="comma list of epochs to report (default: every 10th); the last is always reported")
    return p


def main(argv=None):
    import train
    parser = build_parser()
    args = accuracy.start_in_process(parser, argv)
    if any(not 1 <= e <= args.epochs for e in args.report):
        parser.error(f"--report: epochs must lie in 1..{args.epochs}; got {args.report}")
    sections, rows = [], []
    for setting in args.settings:
        for method in args.methods:
            recorder = EpochRecorder(args.clean_pass)
            code = train.main(accuracy.train_argv(args, setting, method), callbacks=[recorder])
            name = f"{accuracy.SETTINGS[setting][0]}, {accuracy.METHODS[method][0]}"
            if code != 0 or not recorder.epochs:   # keep the sections already measured
                print(f"[{setting} / {method}] train.py exit {code}", file=sys.stderr)
                sections.append(f"**{name}**: train.py exit {code}, nothing recorded")
                rows.append({"setting": setting, "method": method, "error": f"train.py exit {code}"})
                continue
            reports = {e: {k: None if np.isnan(v) else v for k, v in recorder.report(e).items()}   # NaN: no JSON
                       for e in report_epochs(args.report, len(recorder.epochs))}
            sections.append(markdown(name, reports))
            rows.append({"setting": setting, "method": method, "reports": reports})
    command = "python benchmarks/detection_scores.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = (f"Command: `{command}`\n\nMachine: {accuracy.machine()}\n\nCIFAR-10, {args.subset or 'all'} training "
            f"images per class, PreActResNet18 width {args.width}, {args.epochs} epochs, seed {args.seed}. "
            f"Detection AUROC of each score against the true noise mask.\n\n" + "\n\n".join(sections) + "\n")
    accuracy.write_outputs(args.out, text, rows)
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
