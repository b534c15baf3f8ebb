"""Noise scores, flags, suggested labels, detection metrics and the ranked table, by hand."""
import math

import numpy as np
import pytest
import torch

from model.label_issues import (candidate_scores, detection_metrics, estimated_noise_rate, estimated_transition,
                                flag, label_issue_table, rejected_group_weight, suggest_labels)


def test_candidate_scores_hand_case():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    given = torch.tensor([0, 0])
    u = torch.tensor([[0.5], [1.2]])                       # u^2 = 0.25, 1.44 -> clamped to 1
    v = torch.tensor([[0.3, 0.4, 0.0], [2.0, 1.0, 0.5]])   # the given class (0) does not count
    scores = candidate_scores(probs, given, u, v)
    assert set(scores) == {"loss", "u2", "sop", "v2"}
    assert scores["loss"].tolist() == pytest.approx([0.3, 0.9])
    assert scores["u2"].tolist() == pytest.approx([0.25, 1.0])
    assert scores["sop"].tolist() == pytest.approx([0.275, 0.95])
    assert scores["v2"].tolist() == pytest.approx([0.16, 1.0])  # 1 + 0.25 clamped


def test_cross_entropy_model_only_gets_the_loss_score():
    scores = candidate_scores(torch.tensor([[0.25, 0.75]]), torch.tensor([1]))
    assert list(scores) == ["loss"] and scores["loss"].tolist() == pytest.approx([0.25])


def test_two_separate_groups_of_scores_give_their_exact_proportion():
    scores = torch.tensor([0.1] * 70 + [0.9] * 30)
    assert estimated_noise_rate(scores) == pytest.approx(0.3)
    assert flag(scores).tolist() == [False] * 70 + [True] * 30


def test_an_underfitted_network_does_not_inflate_the_estimate():
    # clean labels the network only half believes (0.3) and wrong ones it rejects (0.95): the mean
    # score, 0.56, would call 56% wrong; the mixture finds the 40% group
    scores = torch.tensor([0.95] * 40 + [0.3] * 60)
    assert rejected_group_weight(scores) == pytest.approx(0.4) and estimated_noise_rate(scores) == pytest.approx(0.4)
    assert flag(scores).sum() == 40 and flag(scores)[:40].all()


def test_the_mixture_weight_of_sampled_scores_is_recovered():
    g = torch.Generator().manual_seed(0)
    clean = (0.15 + 0.08 * torch.randn(2000, generator=g)).clamp(0, 1)
    wrong = (0.85 + 0.05 * torch.randn(1000, generator=g)).clamp(0, 1)
    assert estimated_noise_rate(torch.cat([clean, wrong])) == pytest.approx(1 / 3, abs=0.005)
    # the order of the samples does not matter
    assert estimated_noise_rate(torch.cat([wrong, clean])) == pytest.approx(estimated_noise_rate(torch.cat([clean, wrong])),
                                                                             abs=1e-9)


def test_when_the_rejected_group_outweighs_the_mean_score_the_mean_is_taken():
    # 20 samples rejected (0.6) among 80 well fitted (0.05): the group weighs 0.2, the mean score
    # 0.8 * 0.05 + 0.2 * 0.6 = 0.16 is smaller
    scores = torch.tensor([0.05] * 80 + [0.6] * 20)
    assert rejected_group_weight(scores) == pytest.approx(0.2)
    assert estimated_noise_rate(scores) == pytest.approx(0.16)
    assert flag(scores).sum() == 16


def test_one_cluster_is_not_split_into_a_rejected_group():
    g = torch.Generator().manual_seed(0)
    # EM splits a single cluster at 0.9 in two (weights ~0.7 / 0.3) whose means nearly coincide:
    # Ashman's D ~ 0, no rejected group, the mean score
    cluster = (0.9 + 0.02 * torch.randn(1000, generator=g)).clamp(0, 1)
    assert rejected_group_weight(cluster) is None
    assert estimated_noise_rate(cluster) == pytest.approx(float(cluster.double().mean()))
    # an untrained network: 1 - p_given of random logits over 10 classes, one broad cluster near 0.9
    untrained = 1 - torch.softmax(torch.randn(5000, 10, generator=g), dim=1)[:, 0]
    assert rejected_group_weight(untrained) is None


def test_non_finite_scores_are_not_fitted():
    assert rejected_group_weight(torch.tensor([0.1, float("nan"), 0.9])) is None


def test_without_a_group_the_network_rejects_the_estimate_is_the_mean_score():
    # EM splits any scores in two; here the higher group (mean 0.025) is still believed: mean 0.02 -> none
    assert rejected_group_weight(torch.tensor([0.01, 0.02, 0.03])) is None
    assert estimated_noise_rate(torch.tensor([0.01, 0.02, 0.03])) == pytest.approx(0.02)
    assert not flag(torch.tensor([0.01, 0.02, 0.03])).any()
    # scores that do not vary: mean 0.6 -> 3 flagged of a five-way tie, the earlier samples first
    assert flag(torch.tensor([0.6, 0.6, 0.6, 0.6, 0.6])).tolist() == [True, True, True, False, False]
    assert flag(torch.tensor([])).tolist() == []


def test_suggestion_is_the_prediction_or_for_a_flagged_agreeing_sample_the_runner_up():
    probs = torch.tensor([[0.6, 0.3, 0.1],    # flagged, predicts its given 0 -> runner-up 1
                          [0.1, 0.2, 0.7],    # flagged, predicts 2 != given 0 -> 2
                          [0.5, 0.4, 0.1]])   # not flagged -> prediction 0
    given = torch.tensor([0, 0, 0])
    flags = torch.tensor([True, True, False])
    assert suggest_labels(probs, given, flags).tolist() == [1, 2, 0]


def test_estimated_transition_rows_are_suggested_labels():
    t = estimated_transition([0, 0, 0, 1], [0, 0, 1, 1], 3)
    np.testing.assert_allclose(t, [[2 / 3, 1 / 3, 0], [0, 1, 0], [0, 0, 0]])


def test_detection_metrics_hand_case_with_a_tie():
    scores = torch.tensor([0.9, 0.6, 0.6, 0.2])
    given = torch.tensor([1, 2, 0, 0])
    clean = torch.tensor([0, 2, 1, 0])                      # noisy: samples 0 and 2
    flags = torch.tensor([True, True, False, False])
    suggested = torch.tensor([0, 2, 0, 0])                  # right on 0 and 1
    m = detection_metrics(scores, flags, suggested, given, clean)
    # pos {0.9, 0.6} vs neg {0.6, 0.2}: 1 + 1 + 0.5 (tie) + 1 over 4 pairs
    assert m["auroc"] == pytest.approx(0.875)
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert m["realised_rate"] == 0.5
    assert m["suggested_accuracy"] == 1.0
    m = detection_metrics(scores, torch.tensor([True, True, True, False]), torch.tensor([0, 2, 0, 0]), given, clean)
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((2 / 3, 1.0, 0.8))
    assert m["suggested_accuracy"] == pytest.approx(2 / 3)  # wrong on sample 2


def test_detection_metrics_with_nothing_flagged():
    m = detection_metrics(torch.tensor([0.3, 0.1]), torch.tensor([False, False]), torch.tensor([0, 1]),
                          torch.tensor([0, 1]), torch.tensor([1, 1]))
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0
    assert math.isnan(m["suggested_accuracy"]) and m["auroc"] == 1.0


def test_table_is_ranked_by_score_with_original_indices_and_stable_ties():
    rows = label_issue_table(torch.tensor([0.2, 0.9, 0.2, 0.7]), torch.tensor([False, True, False, True]),
                             torch.tensor([3, 4, 5, 6]), torch.tensor([0, 1, 2, 3]), np.array([40, 10, 30, 20]))
    assert rows == [(10, 1, 4, pytest.approx(0.9), True), (20, 3, 6, pytest.approx(0.7), True),
                    (40, 0, 3, pytest.approx(0.2), False), (30, 2, 5, pytest.approx(0.2), False)]
