"""SOP / SOP+ loss (matching the official implementation) and cross-entropy (optionally
per-sample weighted, which the clean-label oracle uses).

Both return a dict of scalar tensors: ``loss`` (what is backpropagated) and
each term, so the trainer can log them and name them when one is not finite.
"""
import torch
import torch.nn.functional as F

EPS = 1e-4


def noise_adjusted_prediction(logits, onehot, u_rows, v_rows):
    """q = normalise(clamp(softmax(f) + u^2 y - stopgrad(v^2 (1-y)))), plus U and V."""
    U = torch.clamp(u_rows ** 2 * onehot, 0, 1)
    V = torch.clamp(v_rows ** 2 * (1 - onehot), 0, 1)
    q = torch.clamp(F.softmax(logits, dim=1) + U - V.detach(), min=EPS)
    q = F.normalize(q, p=1, dim=1, eps=EPS)
    return torch.clamp(q, min=EPS, max=1.0), U, V


def consistency_term(logits_weak, logits_strong):
    """mean_b KL( stopgrad(softmax(f_weak)) || softmax(f_strong) )."""
    target = F.softmax(logits_weak.detach(), dim=1)
    return F.kl_div(F.log_softmax(logits_strong, dim=1), target, reduction="none").sum(dim=1).mean()


def balance_term(q, batch_mean=None):
    """-(1/C) sum_k log qbar_k, qbar the batch mean of the adjusted prediction."""
    qbar = q.mean(dim=0) if batch_mean is None else batch_mean(q)
    qbar = torch.clamp(qbar, min=EPS, max=1.0)
    return -torch.log(qbar).mean()


def sop_loss(logits, labels, u_rows, v_rows, logits_strong=None, ratio_consistency=0.0, ratio_balance=0.0,
             share=1.0, batch_mean=None):
    """SOP(+) loss of a batch. ``logits`` are the weak view's, float32 (B, C);
    ``labels`` the given (noisy) labels (B,); ``u_rows`` (B, 1), ``v_rows`` (B, C).

    For data-parallel training a rank passes ``share`` = its batch size x world
    size / global batch size (scales the per-sample terms) and ``batch_mean``,
    a differentiable global-batch mean of q, so that averaging the ranks'
    gradients gives the gradient of the single-process global-batch loss."""
    batch, num_classes = logits.shape
    onehot = F.one_hot(labels, num_classes).to(logits.dtype)
    q, U, V = noise_adjusted_prediction(logits, onehot, u_rows, v_rows)
    ce = -(onehot * torch.log(q)).sum(dim=1).mean()
    predicted = F.one_hot(logits.detach().argmax(dim=1), num_classes).to(logits.dtype)
    mse = ((predicted + U - V - onehot) ** 2).sum() / batch
    terms = {"ce": ce, "mse": mse}
    loss = share * (ce + mse)
    if ratio_balance > 0:
        terms["balance"] = balance_term(q, batch_mean)
        loss = loss + ratio_balance * terms["balance"]
    if ratio_consistency > 0 and logits_strong is not None:
        terms["consistency"] = consistency_term(logits, logits_strong)
        loss = loss + share * ratio_consistency * terms["consistency"]
    terms["loss"] = loss
    return terms


def cross_entropy_loss(logits, labels, share=1.0, weight=None, **_):
    """Mean cross-entropy; with per-sample ``weight``, the mean of weight * CE. The clean-label
    oracle weighs each sample by keep / (kept fraction of the training set): a constant
    normaliser, so the loss is an unbiased estimate of the clean samples' mean cross-entropy
    that needs no count of the kept rows across ranks."""
    if weight is None:
        ce = F.cross_entropy(logits, labels)
    else:
        ce = (F.cross_entropy(logits, labels, reduction="none") * weight).mean()
    return {"ce": ce, "loss": share * ce}
