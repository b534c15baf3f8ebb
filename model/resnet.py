"""Post-activation ResNet34 for 32x32 inputs (CIFAR variant).

3x3 stride-1 stem, no max-pool, BasicBlock stages [3,4,6,3], 1x1 conv + BN
projection shortcuts, global average pool, linear head.
The stem, stages and head are `model.cifar_resnet.CifarResNet`.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.cifar_resnet import CifarResNet


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def ResNet34(num_classes: int = 10, width: int = 64) -> CifarResNet:
    return CifarResNet(BasicBlock, [3, 4, 6, 3], num_classes, width)
