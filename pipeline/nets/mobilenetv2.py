"""MobileNetV2 (Sandler et al., 2018) in the CIFAR form of RepDistiller (Tian et al., CRD, 2020).

A stride-2 3x3 stem, seventeen inverted residual blocks (1x1 expansion by t, 3x3 depthwise, 1x1
linear projection; a residual connection where stride 1 keeps the shape), a 1x1 conv to 1280
channels, global average pooling and a linear head. For 32x32 images the second block group
keeps stride 1 (ImageNet's has 2), so the last maps are 2x2. `width` is the stem's channels,
32 x the width multiplier: 16 (multiplier 0.5) is RepDistiller's "MobileNetV2" student (0.8M
parameters with 100 classes), 32 the full-width net (2.4M).
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.nets.backbone import Backbone

# (expansion t, output channels at multiplier 1, blocks n, first block's stride s)
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
STAGE_ENDS = (1, 2, 4)  # the groups after which the map is about to shrink: their outputs are stage maps
LAST = 1280


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    return nn.Sequential(*layers, nn.ReLU6()) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        layers = [conv_bn(c_in, hidden, 1)] if expansion != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, c_out, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(Backbone):
    """Stage maps: the outputs of block groups 2, 3 and 5 (24, 32 and 96 channels x the
    multiplier; 16, 8 and 4 pixels at a 32x32 input) and the final 1x1 conv's (1280 channels,
    2 pixels); feature_dim = 1280 (1280 x the multiplier above 1)."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        mult = width / 32
        self.stem = conv_bn(in_channels, width, 3, 2)
        groups, c = [], width
        for t, c_base, n, s in SETTINGS:
            c_out = max(1, int(c_base * mult))
            blocks = [InvertedResidual(c, c_out, s, t)]
            blocks += [InvertedResidual(c_out, c_out, 1, t) for _ in range(n - 1)]
            groups.append(nn.Sequential(*blocks))
            c = c_out
        self.groups = nn.ModuleList(groups)
        self.feature_dim = int(LAST * mult) if mult > 1 else LAST
        self.last = conv_bn(c, self.feature_dim, 1)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def stage_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, maps = self.stem(x), []
        for i, group in enumerate(self.groups):
            h = group(h)
            if i in STAGE_ENDS:
                maps.append(h)
        maps.append(self.last(h))
        return maps

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=(2, 3))
