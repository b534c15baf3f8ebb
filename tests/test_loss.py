"""SOP loss terms against values computed by hand (3 classes, zero logits)."""
import math

import pytest
import torch

from model.loss import balance_term, consistency_term, cross_entropy_loss, sop_loss


def one_sample(u=0.5, v=0.2):
    logits = torch.zeros(1, 3, requires_grad=True)   # softmax = 1/3 each, argmax = class 0
    u_rows = torch.tensor([[u]], requires_grad=True)
    v_rows = torch.full((1, 3), v, requires_grad=True)
    return logits, torch.tensor([0]), u_rows, v_rows


def test_sop_terms_match_hand_computation():
    logits, labels, u_rows, v_rows = one_sample()
    terms = sop_loss(logits, labels, u_rows, v_rows)
    # U = 0.25 on the label, V = 0.04 elsewhere: q = [7/12, 0.29333, 0.29333] / 1.17
    q0 = (1 / 3 + 0.25) / (1 / 3 + 0.25 + 2 * (1 / 3 - 0.04))
    assert terms["ce"].item() == pytest.approx(-math.log(q0), rel=1e-6)
    # argmax one-hot [1,0,0] + U - V - y = [0.25, -0.04, -0.04]
    assert terms["mse"].item() == pytest.approx(0.0625 + 2 * 0.0016, rel=1e-6)
    assert terms["loss"].item() == pytest.approx(-math.log(q0) + 0.0657, rel=1e-6)
    assert set(terms) == {"ce", "mse", "loss"}


def test_sop_gradients_match_hand_computation():
    logits, labels, u_rows, v_rows = one_sample()
    sop_loss(logits, labels, u_rows, v_rows)["loss"].backward()
    # v only gets the MSE gradient: 2 * residual * (-1) * dV/dv = 2 * (-0.04) * (-1) * 0.4 = 0.032
    assert v_rows.grad[0].tolist() == pytest.approx([0.0, 0.032, 0.032], abs=1e-6)
    # u: MSE part 2 * 0.25 * 2u = 0.5; CE part -d log q0/dU * dU/du with q0 = a/(a+b), a = 7/12
    a, s = 1 / 3 + 0.25, 1 / 3 + 0.25 + 2 * (1 / 3 - 0.04)
    d_ce_dU = -(1 / a - 1 / s)
    assert u_rows.grad.item() == pytest.approx(0.5 + d_ce_dU * 2 * 0.5, rel=1e-5)


def test_noise_terms_are_zero_at_init_and_ce_matches_plain_ce():
    logits = torch.randn(4, 5)
    labels = torch.tensor([0, 1, 2, 3])
    zeros_u, zeros_v = torch.zeros(4, 1), torch.zeros(4, 5)
    terms = sop_loss(logits, labels, zeros_u, zeros_v)
    plain = cross_entropy_loss(logits, labels)["loss"]
    assert terms["ce"].item() == pytest.approx(plain.item(), rel=1e-5)
    wrong = (logits.argmax(1) != labels).sum().item()
    assert terms["mse"].item() == pytest.approx(2 * wrong / 4, rel=1e-6)


def test_q_is_clamped_and_normalised():
    logits = torch.tensor([[20.0, -20.0, -20.0]])
    terms = sop_loss(logits, torch.tensor([1]), torch.zeros(1, 1), torch.full((1, 3), 2.0))
    # V clamps to 1 off the label; q = clamp([1-1, 0, 0], 1e-4) normalised -> 1/3 each
    assert terms["ce"].item() == pytest.approx(math.log(3), rel=1e-4)


def test_balance_term_hand_computed():
    q = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.0, 0.5]])
    # qbar = [0.5, 0.25, 0.25]
    expected = -(math.log(0.5) + 2 * math.log(0.25)) / 3
    assert balance_term(q).item() == pytest.approx(expected, rel=1e-6)


def test_consistency_term_hand_computed_and_stops_gradient_of_weak_view():
    weak = torch.log(torch.tensor([[0.5, 0.25, 0.25]])).requires_grad_()
    strong = torch.log(torch.tensor([[0.25, 0.5, 0.25]])).requires_grad_()
    value = consistency_term(weak, strong)
    expected = 0.5 * math.log(0.5 / 0.25) + 0.25 * math.log(0.25 / 0.5)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert weak.grad is None or torch.all(weak.grad == 0)
    assert strong.grad.abs().sum() > 0


def test_sop_plus_adds_weighted_terms():
    torch.manual_seed(0)
    logits, strong = torch.randn(6, 4), torch.randn(6, 4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    u, v = torch.rand(6, 1) * 0.3, torch.rand(6, 4) * 0.3
    base = sop_loss(logits, labels, u, v)["loss"]
    plus = sop_loss(logits, labels, u, v, strong, ratio_consistency=0.9, ratio_balance=0.1)
    expected = base + 0.9 * plus["consistency"] + 0.1 * plus["balance"]
    assert plus["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert "consistency" not in sop_loss(logits, labels, u, v, None, ratio_consistency=0.9)


def test_weighted_cross_entropy_as_the_oracle_uses_it_hand_computed():
    # 2 classes; per-sample CE: [ln 2, ln 2, ln(1 + e^-2), ln(1 + e^2)] for logits [0, 0], [0, 0], [2, 0], [2, 0]
    logits = torch.tensor([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0], [2.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1])
    # the run keeps a quarter of its labels (weight keep / 0.25), this batch half: the normaliser is the run's
    weight = torch.tensor([1.0, 0.0, 1.0, 0.0]) / 0.25
    terms = cross_entropy_loss(logits, labels, share=0.5, weight=weight)
    expected = (math.log(2) + math.log(1 + math.exp(-2))) / (4 * 0.25)
    assert terms["ce"].item() == pytest.approx(expected) and terms["loss"].item() == pytest.approx(0.5 * expected)
    terms["loss"].backward()
    assert torch.equal(logits.grad[1], torch.zeros(2)) and torch.equal(logits.grad[3], torch.zeros(2))
    # softmax([0, 0]) - onehot(0) = [-1/2, 1/2], times share * weight / N = 0.5 * 4 / 4
    assert torch.allclose(logits.grad[0], torch.tensor([-0.25, 0.25]))


def test_cross_entropy_with_unit_weights_is_plain_cross_entropy():
    logits, labels = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0, 1, 2])
    weighted = cross_entropy_loss(logits, labels, weight=torch.ones(6))
    assert weighted["loss"].item() == pytest.approx(cross_entropy_loss(logits, labels)["loss"].item())
