"""The ResNet body shared by the CIFAR networks: 3x3 stride-1 conv stem + BN +
ReLU (no max-pool), four stages of ``block`` with widths width*(1, 2, 4, 8),
global average pool, linear head.

Init: torchvision ResNet style: convs kaiming_normal_(fan_out, relu), BN
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


class CifarResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes: int = 10, width: int = 64):
        super().__init__()
        widths = [width * m for m in (1, 2, 4, 8)]
        self.in_planes = width
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(block, widths[0], num_blocks[0], 1)
        self.layer2 = self._make_layer(block, widths[1], num_blocks[1], 2)
        self.layer3 = self._make_layer(block, widths[2], num_blocks[2], 2)
        self.layer4 = self._make_layer(block, widths[3], num_blocks[3], 2)
        self.linear = nn.Linear(widths[3], num_classes)
        init_resnet_weights(self)

    def _make_layer(self, block, planes: int, n: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)
