import math

import numpy as np
import pytest
import torch

from model.metrics import accuracy, auroc, precision_recall_f1


def test_accuracy_logits_and_preds():
    logits = torch.tensor([[2.0, 1.0], [0.1, 0.9], [3.0, -1.0], [0.0, 5.0]])
    targets = torch.tensor([0, 1, 1, 1])
    assert accuracy(logits, targets) == 0.75
    assert accuracy(np.array([0, 1, 1, 1]), [0, 1, 0, 0]) == 0.5
    assert isinstance(accuracy(logits, targets), float)
    assert math.isnan(accuracy(np.zeros(0), np.zeros(0)))


def test_auroc_hand_case():
    # pairs (pos, neg): (0.35,0.1)+ (0.35,0.4)- (0.8,0.1)+ (0.8,0.4)+ -> 3/4
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([False, False, True, True])) == pytest.approx(0.75)


def test_auroc_keeps_the_precision_of_float64_and_reads_half_types():
    # 1 and 1 + 1e-12 are one float32 value: ranked in float32 they would tie (0.5)
    scores = torch.tensor([1.0, 1.0 + 1e-12], dtype=torch.float64)
    assert auroc(scores, torch.tensor([False, True])) == 1.0
    assert auroc(torch.tensor([0.25, 0.75], dtype=torch.bfloat16), [0, 1]) == 1.0
    assert auroc(torch.tensor([0.25, 0.75], dtype=torch.float16), [1, 0]) == 0.0


def test_auroc_ties_across_classes():
    # pos {0.5, 0.9}, neg {0.5, 0.1}: (0.5,0.5) tie=1/2, (0.5,0.1)=1, (0.9,*)=1+1 -> 3.5/4
    assert auroc([0.5, 0.9, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.875)
    # pos {0.3}, neg {0.3, 0.3, 0.2}: 1/2 + 1/2 + 1 -> 2/3
    assert auroc([0.3, 0.3, 0.3, 0.2], [1, 0, 0, 0]) == pytest.approx(2 / 3)


def test_auroc_extremes():
    assert auroc([0.7] * 6, [0, 1, 0, 1, 1, 0]) == 0.5
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    assert math.isnan(auroc([0.1, 0.2], [1, 1]))
    assert math.isnan(auroc([0.1, 0.2], [0, 0]))


def test_auroc_matches_brute_force():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 60).astype(float)  # many ties
    y = rng.integers(0, 2, 60).astype(bool)
    pos, neg = s[y][:, None], s[~y][None, :]
    brute = ((pos > neg) + 0.5 * (pos == neg)).mean()
    assert auroc(s, y) == pytest.approx(brute)


def test_precision_recall_f1_hand_cases():
    # flagged 3, tp 2, positives 4 -> p=2/3, r=1/2, f1=4/7
    p, r, f1 = precision_recall_f1([1, 1, 1, 0, 0, 0], [1, 1, 0, 1, 1, 0])
    assert (p, r, f1) == pytest.approx((2 / 3, 0.5, 4 / 7))
    assert precision_recall_f1([1, 0], [1, 0]) == (1.0, 1.0, 1.0)
    assert precision_recall_f1([1, 1], [0, 0]) == (0.0, 0.0, 0.0)


def test_precision_recall_f1_no_flags():
    assert precision_recall_f1([0, 0, 0], [1, 0, 1]) == (0.0, 0.0, 0.0)
    assert precision_recall_f1(torch.zeros(3, dtype=torch.bool), torch.zeros(3)) == (0.0, 0.0, 0.0)
