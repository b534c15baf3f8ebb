"""Pre-activation ResNet for 32x32 inputs (He et al. 2016, "Identity Mappings").

Same layout as the official SOP repo (shengliu66/SOP, model/PreResNet.py):
3x3 stride-1 conv stem followed by BN+ReLU, no max-pool, PreActBlock stages,
global average pool, linear head. As in that repo there is NO final BN+ReLU
after the last stage (He et al.'s variant has one; it would add 2*8*width
params). Shortcuts are a bare 1x1 conv (no BN) when the shape changes.
Param count, PreActResNet18 width 64, 10 classes: 11,171,274 (= the
kuangliu/DivideMix 11,171,146 + 128 for the stem BN).

``identity_shortcut``: what a block whose shape does not change adds to its
residual. "preactivated" (the official code): relu(bn1(x)), the tensor the
convolutions start from. "input": x itself, as in He et al. and kuangliu's
pytorch-cifar; this project's blocks did that until the official one became
the default, and every config written before names none (see
model.networks.complete_arch_args). Both have the same parameters.

The stem, stages and head are `model.cifar_resnet.CifarResNet`.
"""
import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.cifar_resnet import CifarResNet

IDENTITY_SHORTCUTS = ("preactivated", "input")


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, identity_shortcut: str = "preactivated"):
        super().__init__()
        if identity_shortcut not in IDENTITY_SHORTCUTS:
            raise ValueError(f"identity_shortcut must be one of {IDENTITY_SHORTCUTS}, got {identity_shortcut!r}")
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)
        self.identity_from_input = identity_shortcut == "input"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        if self.shortcut is not None:
            shortcut = self.shortcut(out)
        else:
            shortcut = x if self.identity_from_input else out
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


def PreActResNet18(num_classes: int = 10, width: int = 64, identity_shortcut: str = "preactivated") -> CifarResNet:
    block = functools.partial(PreActBlock, identity_shortcut=identity_shortcut)
    return CifarResNet(block, [2, 2, 2, 2], num_classes, width)


def PreActResNet34(num_classes: int = 10, width: int = 64, identity_shortcut: str = "preactivated") -> CifarResNet:
    block = functools.partial(PreActBlock, identity_shortcut=identity_shortcut)
    return CifarResNet(block, [3, 4, 6, 3], num_classes, width)
