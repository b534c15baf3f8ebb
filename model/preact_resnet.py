"""Pre-activation ResNet for 32x32 inputs (He et al. 2016, "Identity Mappings").

Same layout as the official SOP repo (shengliu66/SOP, model/PreResNet.py):
3x3 stride-1 conv stem followed by BN+ReLU, no max-pool, PreActBlock stages,
global average pool, linear head. As in that repo there is NO final BN+ReLU
after the last stage (He et al.'s variant has one; it would add 2*8*width
params). Shortcuts are a bare 1x1 conv (no BN) when the shape changes.
Param count, PreActResNet18 width 64, 10 classes: 11,171,274 (= the
kuangliu/DivideMix 11,171,146 + 128 for the stem BN).

Init: torchvision ResNet style -- convs kaiming_normal_(fan_out, relu), BN
weight 1 / bias 0, Linear keeps the PyTorch default.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def init_resnet_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    def __init__(self, num_blocks, num_classes: int = 10, width: int = 64):
        super().__init__()
        widths = [width * m for m in (1, 2, 4, 8)]
        self.in_planes = width
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(widths[0], num_blocks[0], 1)
        self.layer2 = self._make_layer(widths[1], num_blocks[1], 2)
        self.layer3 = self._make_layer(widths[2], num_blocks[2], 2)
        self.layer4 = self._make_layer(widths[3], num_blocks[3], 2)
        self.linear = nn.Linear(widths[3], num_classes)
        init_resnet_weights(self)

    def _make_layer(self, planes: int, n: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def PreActResNet18(num_classes: int = 10, width: int = 64) -> PreActResNet:
    return PreActResNet([2, 2, 2, 2], num_classes, width)


def PreActResNet34(num_classes: int = 10, width: int = 64) -> PreActResNet:
    return PreActResNet([3, 4, 6, 3], num_classes, width)
