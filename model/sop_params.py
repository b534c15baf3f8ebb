"""SOP's per-sample parameters u (N x 1) and v (N x C) and their SGD.

u and v are plain tensors, not ``nn.Parameter``: a step reads the batch's rows
into fresh leaf tensors, the loss backpropagates into those rows only, and
`step` writes ``row -= lr * grad`` back with ``index_add_``. For SGD without
momentum or weight decay (SOP's setting) this is exactly the dense update,
whose gradient is zero outside the batch, at a cost independent of N.
"""
import torch
import torch.distributed as dist

from utils.dist import active, all_gather_rows


class SampleNoiseParams:
    def __init__(self, num_samples, num_classes, lr_u, lr_v, init_std=1e-8, device="cpu", generator=None):
        self.lr_u = float(lr_u)
        self.lr_v = float(lr_v)
        self.u = torch.empty(num_samples, 1, device=device)
        self.v = torch.empty(num_samples, num_classes, device=device)
        # drawn on CPU so the same seed gives the same init on every device
        self.u.copy_(torch.randn(num_samples, 1, generator=generator) * init_std)
        self.v.copy_(torch.randn(num_samples, num_classes, generator=generator) * init_std)

    def rows(self, index):
        """Leaf copies of the batch's rows; the loss backpropagates into these."""
        return self.u[index].requires_grad_(), self.v[index].requires_grad_()

    @torch.no_grad()
    def step(self, index, u_rows, v_rows, grad_scale=None):
        """SGD on the rows in ``index`` with the gradients left on ``u_rows``/``v_rows``.

        ``grad_scale``: the fp16 loss scale to divide out, None without one. With
        a scale (any, 1 included: a backed-off scale is still fp16), a step whose
        gradient is not finite leaves every row unchanged (GradScaler skips such
        steps for the network), decided on the device without a host sync;
        without one a non-finite loss stops the run, so no check is needed.
        Duplicate indices add up, as in the dense gradient.

        Under torch.distributed every rank gathers all ranks' indices and row
        gradients and applies the same update, so u and v stay identical on
        every rank. Each rank's loss is scaled so that its gradients are
        world_size times its share of the global-batch gradient (see
        trainer.Trainer.train_step), hence the division by world_size.
        """
        index, grad_u, grad_v = all_gather_rows(index, u_rows.grad, v_rows.grad)
        world_size = dist.get_world_size() if active() else 1
        if grad_scale is not None:
            finite = torch.isfinite(grad_u).all() & torch.isfinite(grad_v).all()
            grad_u = torch.where(finite, grad_u, torch.zeros_like(grad_u))
            grad_v = torch.where(finite, grad_v, torch.zeros_like(grad_v))
        scale = (1.0 if grad_scale is None else grad_scale) * world_size
        self.u.index_add_(0, index, grad_u, alpha=-self.lr_u / scale)
        self.v.index_add_(0, index, grad_v, alpha=-self.lr_v / scale)

    def state_dict(self):
        return {"u": self.u, "v": self.v, "lr_u": self.lr_u, "lr_v": self.lr_v}

    def load_state_dict(self, state):
        if state["u"].shape != self.u.shape or state["v"].shape != self.v.shape:
            raise ValueError(f"u/v of shape {tuple(state['v'].shape)} do not fit {tuple(self.v.shape)}")
        self.u.copy_(state["u"])
        self.v.copy_(state["v"])
        self.lr_u = float(state["lr_u"])
        self.lr_v = float(state["lr_v"])
