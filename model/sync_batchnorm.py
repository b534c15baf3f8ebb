"""BatchNorm whose training statistics span all data-parallel ranks.

torch.nn.SyncBatchNorm only runs on GPUs; this one uses a differentiable
all-reduce of per-channel sums, so the same code runs on CPU (gloo) and CUDA
(NCCL) and, with the global batch split over ranks, computes what one process
with the whole batch would: the same outputs, gradients and running statistics.
"""
import torch
import torch.nn as nn

from utils.dist import active, differentiable_sum


class GlobalBatchNorm2d(nn.BatchNorm2d):
    def forward(self, x):
        if not (self.training and active()):
            return super().forward(x)
        channels = x.shape[1]
        count = torch.tensor([x.numel() / channels], device=x.device, dtype=torch.float32)
        local = torch.cat([x.float().sum(dim=(0, 2, 3)), (x.float() ** 2).sum(dim=(0, 2, 3)), count])
        total = differentiable_sum(local)
        n = total[-1]
        mean = total[:channels] / n
        var = total[channels:2 * channels] / n - mean ** 2
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1), momentum)
        shape = (1, channels, 1, 1)
        out = (x.float() - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)


def convert_to_global_batchnorm(module):
    """Replace every BatchNorm2d in ``module`` by a GlobalBatchNorm2d with the same state."""
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, GlobalBatchNorm2d):
        replacement = GlobalBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                        module.track_running_stats)
        replacement.load_state_dict(module.state_dict())
        return replacement.to(next(module.buffers()).device)
    for name, child in module.named_children():
        setattr(module, name, convert_to_global_batchnorm(child))
    return module
