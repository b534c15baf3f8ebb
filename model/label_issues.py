"""Which given labels look wrong: per-sample noise scores, flags, suggested labels.

Pure functions of the network's class probabilities ``probs`` (N, C), the given
labels (N,) and, for SOP, the learned per-sample parameters ``u`` (N, 1) and
``v`` (N, C). ``avg_probs`` are the probabilities averaged over recent epochs
(trainer.noise_monitor keeps that average). Every score estimates
P(given label is wrong) and lies in [0, 1]:

- ``u2``: clamp(u^2, 0, 1). SOP models the given one-hot label as
  p_clean + u^2 on the given class - v^2 on the others, so u^2 is the mass the
  given label gets that the clean posterior does not.
- ``loss``: 1 - p_given, the network's own probability that the label is
  wrong. It ranks samples exactly as the per-sample cross-entropy -log p_given
  (the small-loss criterion), so it is the baseline score of a CE-trained model.
- ``v2``: clamp(sum of v^2 over the other classes, 0, 1), the mass SOP moves to
  the other classes.
- ``sop``: (u^2 + 1 - p_given) / 2, the mean of SOP's estimate and the network's.
- ``loss_avg``, ``sop_avg``: the same with the averaged p_given.

Every run ranks by ``loss_avg`` (``loss`` where there is no average yet):
SOP's gain in detection comes from training, not from reading u. Measured on
real CIFAR-10 (README, "Finding noisy labels"): a network trained with SOP
does not memorise the wrong labels, so its averaged probability of the given
label ranks them far better than a cross-entropy model's (50% symmetric, 300
images per class: 0.860 against 0.613 for the small-loss baseline), and adding
u^2 did not help: in every epoch of seven SOP and SOP+ runs ``sop_avg`` was
between 0.004 AUROC below and 0.0002 above ``loss_avg``. u is driven by the same
residual as 1 - p_given, so it repeats that signal with a lag and also grows
for clean samples the network has not fitted; and its size depends on lr_u, so
a score containing it is worse calibrated: the mean of ``sop_avg``
overestimated the noise rate more for symmetric noise and underestimated it
badly for 40% asymmetric noise at lr_u 1 (0.08 for 0.20 realised; ``loss_avg``
0.14). Averaging p over about ten epochs matters: one epoch's probabilities
come from augmented views of a network still moving (cross-entropy, 300
images per class: 0.683 averaged against 0.613). For SOP, how it is averaged
does not: momenta 0.8 to 0.98, the mean over all epochs and the same from an
un-augmented eval-mode pass ranked within 0.007 of it, and margins, per-class
centring and u^2 ranked worse (benchmarks/detection_scores.py; README).

The flagged samples are the round(rate * N) highest scores, and the rate is
`estimated_noise_rate`: the smaller of the mean score (each score read as
P(wrong)) and the weight of the group of labels the network rejects
(`rejected_group_weight`). Scores are not calibrated: a network that fits only
part of its clean images gives many of them p_given well below 1, so the mean
alone overestimated (50% symmetric, 300 images per class: 0.54 for SOP, 0.62
for SOP+, 0.45 realised; all of CIFAR-10 at 36%, SOP+ after 6 and 15 of 15
epochs: 0.77, 0.65), while the rejected group was within 0.04 (0.43, 0.48;
0.34, 0.33; F1 on all data 0.89 against 0.71). On clean labels the mixture
still splits off the hard images (0.31, the mean 0.20), hence the smaller of
the two (benchmarks/flag_rules.py). On human noise (CIFAR-10N worst) the group
undercounted partway through training (0.23 for 0.39 at epoch 26 of 80: a
spike of the most confidently rejected labels, the rest of the errors spread
among the clean ones); at the end the mean score was the smaller. A fixed threshold (score > 1/2) assumes
calibration as well: in a 10-epoch run u^2 is still ~0 for everyone (sop <=
1/2: F1 0.02).
"""
import math

import numpy as np
import torch

from model.metrics import auroc, precision_recall_f1


def default_score(has_average):
    """The score a run reports and exports (see the module docstring)."""
    return "loss_avg" if has_average else "loss"


def _given_prob(probs, given):
    return probs.gather(1, given.view(-1, 1)).squeeze(1)


def candidate_scores(probs, given, u=None, v=None, avg_probs=None):
    """Every score defined in the module docstring that the inputs allow: name -> (N,) tensor.
    ``avg_probs``, the probabilities averaged over past epochs, adds ``loss_avg`` and ``sop_avg``."""
    one_minus_p = (1 - _given_prob(probs, given)).clamp(0, 1)
    scores = {"loss": one_minus_p}
    if avg_probs is not None:
        scores["loss_avg"] = (1 - _given_prob(avg_probs, given)).clamp(0, 1)
    if u is not None:
        u2 = (u.view(-1) ** 2).clamp(0, 1)
        scores["u2"] = u2
        scores["sop"] = (u2 + one_minus_p) / 2
        if avg_probs is not None:
            scores["sop_avg"] = (u2 + scores["loss_avg"]) / 2
    if v is not None:
        other = 1 - torch.nn.functional.one_hot(given, v.shape[1]).to(v.dtype)
        scores["v2"] = (v ** 2 * other).sum(dim=1).clamp(0, 1)
    return scores


MIN_COMPONENT_STD = 0.03   # scores live in [0, 1]; a narrower Gaussian would fit a spike, not a group
MIN_SEPARATION = 2.0       # Ashman's D above which two Gaussians make two distinct groups, not one
EM_BINS, EM_ITERATIONS, EM_TOLERANCE = 1000, 500, 1e-9
FLAG_RULE = "top round(rate * N); rate: the smaller of the mean score and the rejected group's weight"


def estimated_noise_rate(scores):
    """The fraction of wrong labels: `chosen_rate` of the `rate_estimates`."""
    return chosen_rate(rate_estimates(scores))


def rate_estimates(scores):
    """The two estimates of the fraction of wrong labels `chosen_rate` picks from:
    {"mean_score": the mean score (each score read as P(wrong)), "rejected_group":
    `rejected_group_weight`, None when the scores show no such group}."""
    x = scores.detach().cpu().double().flatten()
    return {"mean_score": float(x.mean()) if len(x) else 0.0, "rejected_group": rejected_group_weight(x)}


def chosen_rate(estimates):
    """The smaller of the two estimates, which on synthetic noise each erred upwards in their own
    way: the mean score counts every clean sample the network has not fitted as partly wrong; the
    rejected group also counts a group of hard clean samples when there are no wrong labels to
    find. The mean score alone when there is no rejected group."""
    mean, group = estimates["mean_score"], estimates["rejected_group"]
    return mean if group is None else min(mean, group)


def rejected_group_weight(scores):
    """The weight of the higher-mean component of two Gaussians fitted to the scores by EM, the
    group of labels the network rejects; None when that component's mean is at most 1/2 (no group
    of labels looks wrong to the network), when the two are not distinct groups (Ashman's
    D = sqrt(2) |mean gap| / sqrt(var_1 + var_2) <= MIN_SEPARATION: EM splits any cluster in two,
    e.g. the near-uniform scores of an untrained network) or when the scores do not vary. The fit
    runs on a histogram of EM_BINS bins (width <= 1/1000, far below MIN_COMPONENT_STD), so it costs
    the same for any number of samples."""
    x = scores.detach().cpu().double().flatten()
    if len(x) < 2 or not bool(torch.isfinite(x).all()) or float(x.max() - x.min()) < 1e-6:
        return None
    low, high = float(x.min()), float(x.max())
    counts = torch.histc(x, bins=EM_BINS, min=low, max=high)
    centres = low + (torch.arange(EM_BINS, dtype=torch.float64) + 0.5) * (high - low) / EM_BINS
    counts, centres = counts[counts > 0], centres[counts > 0]
    min_var = MIN_COMPONENT_STD ** 2
    # start from the two halves of the range (each holds the min or the max, so neither is empty;
    # quantiles would start both components on the same value when most scores are equal)
    upper = x > (low + high) / 2
    halves = [x[~upper], x[upper]]
    mean = torch.tensor([float(h.mean()) for h in halves], dtype=torch.float64)
    var = torch.tensor([float(h.var(unbiased=False)) for h in halves], dtype=torch.float64).clamp_min(min_var)
    weight = torch.tensor([len(h) / len(x) for h in halves], dtype=torch.float64)
    previous = -math.inf
    for _ in range(EM_ITERATIONS):
        log_joint = torch.log(weight) - 0.5 * torch.log(var) - 0.5 * (centres[:, None] - mean) ** 2 / var
        log_likelihood = torch.logsumexp(log_joint, dim=1)
        resp = torch.exp(log_joint - log_likelihood[:, None]) * counts[:, None]
        total_resp = resp.sum(dim=0).clamp_min(1e-12)
        weight = total_resp / len(x)
        mean = (resp * centres[:, None]).sum(dim=0) / total_resp
        var = ((resp * (centres[:, None] - mean) ** 2).sum(dim=0) / total_resp).clamp_min(min_var)
        total = float((counts * log_likelihood).sum()) / len(x)
        if total - previous < EM_TOLERANCE:
            break
        previous = total
    high = int(mean.argmax())
    separation = math.sqrt(2) * float(mean.max() - mean.min()) / math.sqrt(float(var.sum()))
    return float(weight[high]) if float(mean[high]) > 0.5 and separation > MIN_SEPARATION else None


def flag(scores, rate=None):
    """The round(rate * N) highest scores (ties: the earlier sample first); ``rate`` defaults to
    `estimated_noise_rate`."""
    rate = estimated_noise_rate(scores) if rate is None else rate
    count = int(round(rate * len(scores)))
    flags = torch.zeros(len(scores), dtype=torch.bool, device=scores.device)
    flags[torch.argsort(scores, descending=True, stable=True)[:count]] = True
    return flags


def suggest_labels(probs, given, flags):
    """The network's prediction; for a flagged sample whose prediction is its given
    label, the most probable other class (a flag means "not this label")."""
    masked = probs.scatter(1, given.view(-1, 1), -1.0)
    return torch.where(flags, masked.argmax(dim=1), probs.argmax(dim=1))


def estimated_transition(suggested, given, num_classes):
    """T_hat[i, j] = fraction of samples with suggested label i whose given label is j:
    the counterpart of the true T[clean, given] with the suggestion standing in for
    the clean label (zero rows for classes never suggested)."""
    s, g = np.asarray(suggested, np.int64), np.asarray(given, np.int64)
    counts = np.bincount(s * num_classes + g, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts.astype(np.float64), totals, out=np.zeros((num_classes, num_classes)), where=totals > 0)


def detection_metrics(scores, flags, suggested, given, clean):
    """Detection quality against the true noise mask (given != clean)."""
    noisy = given != clean
    precision, recall, f1 = precision_recall_f1(flags, noisy)
    flagged = flags.nonzero().view(-1)
    suggested_ok = (suggested[flagged] == clean[flagged]).double()
    return {
        "auroc": auroc(scores, noisy),
        "precision": precision, "recall": recall, "f1": f1,
        "realised_rate": float(noisy.double().mean()),
        # nan when nothing is flagged, like accuracy of an empty batch
        "suggested_accuracy": float(suggested_ok.mean()) if len(flagged) else float("nan"),
    }


def label_issue_table(scores, flags, suggested, given, train_index, files=None):
    """Rows (index, given, suggested, score, flag[, file]) ranked by score, most suspect first;
    ``index`` is the original training-set index, ``files`` each sample's image path (folder
    datasets). Ties keep training order."""
    scores = np.asarray(scores.detach().cpu() if torch.is_tensor(scores) else scores, np.float64)
    order = np.argsort(-scores, kind="stable")
    columns = [np.asarray(train_index), _np(given), _np(suggested), scores, _np(flags).astype(bool)]
    rows = [(int(i), int(g), int(s), float(sc), bool(f)) for i, g, s, sc, f in zip(*(c[order] for c in columns))]
    if files is not None:
        rows = [row + (files[k],) for row, k in zip(rows, order)]
    return rows


def _np(x):
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
