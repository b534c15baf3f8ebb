"""Row-sparse u/v SGD equals the dense SGD update and leaves other rows alone."""
import torch

from model.loss import sop_loss
from model.sop_params import SampleNoiseParams


def batch_loss(u_rows, v_rows, logits, labels):
    return sop_loss(logits, labels, u_rows, v_rows)["loss"]


def make_params(n=50, c=4, lr_u=3.0, lr_v=7.0):
    params = SampleNoiseParams(n, c, lr_u, lr_v, init_std=0.1, generator=torch.Generator().manual_seed(0))
    return params


def test_rows_outside_the_batch_never_change():
    params = make_params()
    u_before, v_before = params.u.clone(), params.v.clone()
    index = torch.tensor([3, 17, 42])
    u_rows, v_rows = params.rows(index)
    batch_loss(u_rows, v_rows, torch.randn(3, 4), torch.tensor([0, 1, 2])).backward()
    params.step(index, u_rows, v_rows)
    outside = torch.ones(50, dtype=torch.bool)
    outside[index] = False
    assert torch.equal(params.u[outside], u_before[outside])
    assert torch.equal(params.v[outside], v_before[outside])
    assert not torch.equal(params.u[index], u_before[index])
    assert not torch.equal(params.v[index], v_before[index])


def test_sparse_update_equals_dense_sgd():
    torch.manual_seed(1)
    params = make_params()
    dense_u = torch.nn.Parameter(params.u.clone())
    dense_v = torch.nn.Parameter(params.v.clone())
    optimizer = torch.optim.SGD([{"params": [dense_u], "lr": 3.0}, {"params": [dense_v], "lr": 7.0}],
                                momentum=0, weight_decay=0)
    for _ in range(5):
        index = torch.randperm(50)[:8]
        logits, labels = torch.randn(8, 4), torch.randint(0, 4, (8,))
        u_rows, v_rows = params.rows(index)
        batch_loss(u_rows, v_rows, logits, labels).backward()
        params.step(index, u_rows, v_rows)
        optimizer.zero_grad()
        batch_loss(dense_u[index], dense_v[index], logits, labels).backward()
        optimizer.step()
    torch.testing.assert_close(params.u, dense_u.detach(), rtol=0, atol=1e-7)
    torch.testing.assert_close(params.v, dense_v.detach(), rtol=0, atol=1e-7)


def test_fp16_loss_scale_is_divided_out_and_non_finite_gradients_are_skipped():
    params = make_params()
    index = torch.tensor([1, 2])
    u_rows, v_rows = params.rows(index)
    batch_loss(u_rows, v_rows, torch.randn(2, 4), torch.tensor([0, 1])).backward()
    expected_u = params.u[index] - 3.0 * u_rows.grad
    u_rows.grad.mul_(1024.0)
    v_rows.grad.mul_(1024.0)
    params.step(index, u_rows, v_rows, grad_scale=1024.0)
    torch.testing.assert_close(params.u[index], expected_u)
    before = params.u.clone()
    u_rows.grad[0, 0] = float("inf")
    params.step(index, u_rows, v_rows, grad_scale=1024.0)
    assert torch.equal(params.u, before)
    params.step(index, u_rows, v_rows, grad_scale=1.0)   # a loss scale backed off to 1 is still fp16
    assert torch.equal(params.u, before) and torch.isfinite(params.v).all()


def test_state_dict_round_trip():
    params = make_params()
    other = SampleNoiseParams(50, 4, 1.0, 1.0)
    other.load_state_dict(params.state_dict())
    assert torch.equal(other.u, params.u) and torch.equal(other.v, params.v)
    assert (other.lr_u, other.lr_v) == (3.0, 7.0)
