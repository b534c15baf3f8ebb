"""Evaluation metrics. Inputs: numpy arrays, torch tensors or lists; outputs: python floats.

Conventions (sklearn's `zero_division=0`):
- precision = 0 when nothing is flagged; recall = 0 when there are no positives;
  f1 = 0 when precision + recall == 0.
- auroc = nan when `is_positive` has only one class (or is empty).
- accuracy of an empty batch = nan.
"""
import math

import numpy as np
import torch


def _np(x) -> np.ndarray:
    """A numpy copy of a tensor in its own precision (half types, which numpy lacks, as float32: a
    float64 score rounded to float32 would turn near-equal values near 1 into ties)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype in (torch.float16, torch.bfloat16) else x).numpy()
    return np.asarray(x)


def accuracy(logits_or_preds, targets) -> float:
    """Fraction correct. 2-D input = logits/probabilities (argmax over dim 1);
    1-D input = predicted class indices."""
    pred, tgt = _np(logits_or_preds), _np(targets).reshape(-1)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    pred = pred.reshape(-1)
    if pred.shape != tgt.shape:
        raise ValueError(f"accuracy: {pred.shape[0]} predictions vs {tgt.shape[0]} targets")
    return float((pred == tgt).mean()) if tgt.size else math.nan


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x, tied values sharing their average rank. O(N log N)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # start of each run of equal values in sorted order
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]  # exclusive
    avg = (starts + 1 + ends) / 2.0  # mean of 1-based ranks starts+1 .. ends
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auroc(scores, is_positive) -> float:
    """Area under the ROC curve = P(score_pos > score_neg) + 0.5 P(tie)
    (Mann-Whitney U / (n_pos n_neg), ties via average ranks). Higher score = more
    likely positive. Returns nan when one class is absent."""
    s = _np(scores).astype(np.float64).reshape(-1)
    y = _np(is_positive).astype(bool).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"auroc: {s.size} scores vs {y.size} labels")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    rank_sum = _average_ranks(s)[y].sum()
    u = rank_sum - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def precision_recall_f1(flags, is_positive) -> tuple[float, float, float]:
    """(precision, recall, f1) of boolean `flags` against boolean ground truth,
    with the zero-division conventions in the module docstring."""
    f = _np(flags).astype(bool).reshape(-1)
    y = _np(is_positive).astype(bool).reshape(-1)
    if f.shape != y.shape:
        raise ValueError(f"precision_recall_f1: {f.size} flags vs {y.size} labels")
    tp = int((f & y).sum())
    n_flagged, n_pos = int(f.sum()), int(y.sum())
    precision = tp / n_flagged if n_flagged else 0.0
    recall = tp / n_pos if n_pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)
