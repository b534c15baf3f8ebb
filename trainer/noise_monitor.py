"""Trainer callback: SOP's noise estimate as a label-issue detector.

Every epoch the scores come from the training-time (weak-view) logits, kept
in a device buffer by `on_batch` at no extra forward cost: augmented and from
a network that changes during the epoch, but a clean pass over the training
set would add about a third to a CPU epoch. Where clean labels are known the
epoch's detection metrics go to metrics.jsonl / tensorboard (``noise/*``, and
``noise_candidates/*`` for every score in model.label_issues); every
``visual_every`` epochs tensorboard also gets u^2 / score histograms split by
truly clean vs noisy, the estimated vs true transition matrix and a grid of
the most suspect images. At the end, one un-augmented pass with the final
model, taken into the average as its newest epoch, gives ``label_issues.csv``
(see `export_label_issues`).
"""
import contextlib
import csv
import json
import math
import os
import time
from typing import NamedTuple

import torch

from data_loader.loaders import DeviceLoader
from model import label_issues as li
from model.metrics import auroc, precision_recall_f1
from trainer.noise_images import suspects_grid, transition_image
from utils.atomic import atomic_open

CSV_NAME = "label_issues.csv"
CSV_COLUMNS = ("index", "given_label", "suggested_label", "score", "flag", "given_class", "suggested_class")
AVERAGE_MOMENTUM = 0.9   # per epoch: the average of p spans about the last ten epochs


@torch.no_grad()
def predict_probs(forward, model, loader, autocast=contextlib.nullcontext, prepare=lambda x: x):
    """(softmax of ``forward``, labels) over ``loader`` in eval mode, rows in dataset order."""
    model.eval()
    index, probs, labels = [], [], []
    for batch in loader:
        with autocast():
            probs.append(forward(prepare(batch.x)).float().softmax(dim=1))
        index.append(batch.index)
        labels.append(batch.y)
    order = torch.argsort(torch.cat(index))
    return torch.cat(probs)[order], torch.cat(labels)[order]


def training_set_loader(data, batch_size, device):
    """The training images, un-augmented, in training order (rows of u/v)."""
    return DeviceLoader(data.images_u8, data.train_noisy.cpu().numpy(), data.mean, data.std,
                        batch_size=batch_size, train=False, device=device)


class Analysis(NamedTuple):
    score_name: str
    scores: torch.Tensor       # (N,) the default score
    flags: torch.Tensor        # (N,) bool: the top round(rate * N) scores
    suggested: torch.Tensor    # (N,) suggested labels
    candidates: dict           # every candidate score: name -> (N,) tensor
    rates: dict                # li.rate_estimates of the scores; flags hold li.chosen_rate of them


def analyse(probs, given, u=None, v=None, avg_probs=None):
    """The scores, flags and suggestions (an Analysis) of one set of predictions; suggestions come
    from the averaged probabilities when there are some."""
    candidates = li.candidate_scores(probs, given, u, v, avg_probs)
    score_name = li.default_score(avg_probs is not None)
    scores = candidates[score_name]
    rates = li.rate_estimates(scores)
    flags = li.flag(scores, li.chosen_rate(rates))
    believed = avg_probs if avg_probs is not None else probs
    return Analysis(score_name, scores, flags, li.suggest_labels(believed, given, flags), candidates, rates)


def rate_fields(analysis):
    """The estimated noise rate (the flagged fraction: the estimate in whole samples) and the two
    estimates it was chosen from; ``rate_rejected_group`` is None when the scores show no group."""
    return {"estimated_rate": float(analysis.flags.double().mean()),
            "rate_mean_score": analysis.rates["mean_score"], "rate_rejected_group": analysis.rates["rejected_group"]}


def averaged_probs(monitor_state, probs):
    """The bias-corrected moving average of a `NoiseMonitor` ``monitor_state`` (its state_dict)
    with ``probs`` as the newest epoch; None when the state holds no finished epoch, as then
    nothing would be averaged."""
    if not monitor_state or not monitor_state.get("epochs_averaged"):
        return None
    ema = monitor_state["prob_ema"].to(probs.device) * AVERAGE_MOMENTUM + probs * (1 - AVERAGE_MOMENTUM)
    return _debiased(ema, int(monitor_state["epochs_averaged"]) + 1)


def _debiased(ema, epochs):
    """An average started at zero, divided by the weight its ``epochs`` updates put on data."""
    return ema / (1 - AVERAGE_MOMENTUM ** epochs)


def summary_path(csv_path):
    """The JSON summary written with a label-issue CSV: same name, .json."""
    return os.path.splitext(csv_path)[0] + ".json"


def export_label_issues(path, data, probs, avg_probs=None, extra=None):
    """Write the ranked CSV at ``path`` and its JSON summary (`summary_path`); returns the summary.
    ``probs``: a clean pass of the model; ``avg_probs``: the average that ends with it."""
    given, clean = data.train_noisy, data.train_clean
    analysis = analyse(probs, given, avg_probs=avg_probs)
    name, scores, flags, suggested = analysis[:4]
    files = data.train_files
    rows = li.label_issue_table(scores, flags, suggested, given, data.train_index, files)
    # surrogateescape: a file name that is not UTF-8 is written back as the bytes it has on disk
    with atomic_open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        writer = csv.writer(f)
        writer.writerow(list(CSV_COLUMNS) + (["path"] if files is not None else []))
        names = data.class_names
        writer.writerows((i, g, s, f"{sc:.6f}", int(fl), names[g], names[s], *rest) for i, g, s, sc, fl, *rest in rows)
    summary = {"score": name, "num_samples": len(rows), "flag_rule": li.FLAG_RULE, "num_flagged": int(flags.sum()),
               **rate_fields(analysis), "class_names": list(data.class_names), **(extra or {})}
    if clean is not None:
        summary.update(li.detection_metrics(scores, flags, suggested, given, clean))
    summary = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in summary.items()}
    with atomic_open(summary_path(path)) as f:
        json.dump(summary, f, indent=2)
    return summary


class NoiseMonitor:
    def __init__(self, data, visual_every=5, num_suspects=32):
        self.data = data
        self.visual_every, self.num_suspects = visual_every, num_suspects
        device = data.train_noisy.device
        self.logits = torch.zeros(data.num_train, data.num_classes, device=device)
        # exponential moving average of each epoch's probabilities (bias-corrected when read)
        self.prob_ema = torch.zeros(data.num_train, data.num_classes, device=device)
        self.epochs_averaged = 0

    def state_dict(self):  # a stop mid-epoch keeps the logits recorded so far
        return {"logits": self.logits, "prob_ema": self.prob_ema, "epochs_averaged": self.epochs_averaged}

    def load_state_dict(self, state):
        self.logits.copy_(state["logits"])
        if "prob_ema" in state:   # checkpoints written before the average existed restart it
            self.prob_ema.copy_(state["prob_ema"])
            self.epochs_averaged = int(state["epochs_averaged"])

    def _update_average(self, probs):
        self.prob_ema.mul_(AVERAGE_MOMENTUM).add_(probs, alpha=1 - AVERAGE_MOMENTUM)
        self.epochs_averaged += 1
        return _debiased(self.prob_ema, self.epochs_averaged)

    def on_batch(self, batch, logits):
        self.logits.index_copy_(0, batch.index, logits)

    def on_epoch_end(self, epoch, trainer):
        sop = trainer.sop
        u, v = (sop.u, sop.v) if sop is not None else (None, None)
        probs = self.logits.softmax(dim=1)
        given, clean = self.data.train_noisy, self.data.train_clean
        analysis = analyse(probs, given, u, v, avg_probs=self._update_average(probs))
        name, scores, flags, suggested, candidates, _ = analysis
        result = {f"noise/{k}": value for k, value in rate_fields(analysis).items() if value is not None}
        if clean is not None:
            result.update({f"noise/{k}": value for k, value in
                           li.detection_metrics(scores, flags, suggested, given, clean).items()})
            noisy = given != clean
            for key, values in candidates.items():
                result[f"noise_candidates/auroc_{key}"] = auroc(values, noisy)
                candidate_flags = flags if key == name else li.flag(values)
                result[f"noise_candidates/f1_{key}"] = precision_recall_f1(candidate_flags, noisy)[2]
        if trainer.metrics is not None and (epoch % self.visual_every == 0 or epoch == trainer.epochs):
            self._visuals(epoch, trainer.metrics, scores, suggested, u)
        return result

    def _visuals(self, epoch, metrics, scores, suggested, u):
        given, clean, num_classes = self.data.train_noisy, self.data.train_clean, self.data.num_classes
        noisy = (given != clean) if clean is not None else None
        for tag, values in (("noise/score", scores), ("noise/u2", None if u is None else (u.view(-1) ** 2))):
            if values is None:
                continue
            if noisy is None:
                metrics.add_histogram(f"{tag}/all", values.cpu(), epoch)
            else:
                for part, mask in (("clean", ~noisy), ("noisy", noisy)):
                    if mask.any():
                        metrics.add_histogram(f"{tag}/{part}", values[mask].cpu(), epoch)
        estimated = li.estimated_transition(suggested.cpu(), given.cpu(), num_classes)
        true = li.estimated_transition(clean.cpu(), given.cpu(), num_classes) if clean is not None else None
        metrics.add_image("noise/transition_estimated_vs_true", transition_image(estimated, true), epoch)
        top = torch.argsort(scores, descending=True, stable=True)[:self.num_suspects].cpu().numpy()
        names = self.data.class_names
        captions = [f"{names[int(given[i])][:6]}>{names[int(suggested[i])][:6]}" for i in top]
        truth = None if noisy is None else noisy[top].cpu().numpy()
        metrics.add_image("noise/most_suspect", suspects_grid(self.data.images_u8[top], captions, truth), epoch)

    def summary_parts(self, result):
        """Pieces for the trainer's epoch line."""
        if "noise/auroc" in result and not math.isnan(result["noise/auroc"]):   # nan: no label is wrong
            return [f"noise auroc {result['noise/auroc']:.3f} f1 {result['noise/f1']:.3f}"]
        return [f"est. noise {result['noise/estimated_rate']:.3f}"] if "noise/estimated_rate" in result else []

    def on_fit_end(self, trainer):
        start = time.perf_counter()
        loader = training_set_loader(self.data, self.data.eval_batch_size, trainer.device)
        probs, _ = predict_probs(trainer.forward, trainer.model, loader, trainer._autocast, trainer._prepare)
        seconds = time.perf_counter() - start
        path = os.path.join(trainer.run_dir, CSV_NAME)
        summary = export_label_issues(path, self.data, probs, averaged_probs(self.state_dict(), probs),
                                      extra={"checkpoint": "final model", "epoch": trainer.epochs,
                                             "test_accuracy": trainer.results["last_test_accuracy"],
                                             "clean_pass_seconds": round(seconds, 2)})
        line = f"label issues: {summary['num_flagged']}/{summary['num_samples']} flagged -> {path}"
        if summary.get("auroc") is not None:   # None without clean labels or without noisy ones
            line += "".join(f" | {key} {summary[key]:.4f}" for key in ("auroc", "precision", "recall", "f1"))
        trainer.log.info(line + f" | clean pass {seconds:.1f}s")
