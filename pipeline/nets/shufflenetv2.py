"""ShuffleNet V2 (Ma et al., 2018) in the CIFAR form of RepDistiller (Tian et al., CRD, 2020).

A 3x3 stem with 24 channels at full size (no max pool), three stages of 4, 8 and 4 units (the
first of each halves the map and doubles the channels), a 1x1 conv to 1024 channels, global
average pooling and a linear head. A unit splits its channels in two, transforms one half
(1x1 conv, 3x3 depthwise conv, 1x1 conv) and concatenates it with the other before a channel
shuffle; a down-sampling unit transforms two copies of its input, each to half its output.
`width` is the first stage's channels (even): 116 is the 1x net (1.4M parameters with 100
classes), 48 the 0.5x one, 176 the 1.5x one; from 224 (the 2x net) the last conv has 2048.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.nets.backbone import Backbone

STEM = 24
UNITS = (4, 8, 4)


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    return nn.Sequential(*layers, nn.ReLU()) if act else nn.Sequential(*layers)


def shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """Interleave the channels of `groups` equal groups: (a1, a2, ..., b1, b2, ...) -> (a1, b1, a2, b2, ...)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def branch(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """1x1 conv (BN, ReLU), 3x3 depthwise conv at `stride` (BN), 1x1 conv (BN, ReLU)."""
    return nn.Sequential(
        conv_bn(c_in, c_out, 1), conv_bn(c_out, c_out, 3, stride, groups=c_out, act=False), conv_bn(c_out, c_out, 1)
    )


class Unit(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.branch = branch(channels // 2, channels // 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept, changed = x.chunk(2, dim=1)
        return shuffle(torch.cat([kept, self.branch(changed)], 1))


class DownUnit(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        half = c_out // 2
        self.left = nn.Sequential(conv_bn(c_in, c_in, 3, 2, groups=c_in, act=False), conv_bn(c_in, half, 1))
        self.right = branch(c_in, half, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return shuffle(torch.cat([self.left(x), self.right(x)], 1))


class ShuffleNetV2(Backbone):
    """Stage maps: the outputs of stages 1 and 2 (width and 2 width channels; 16 and 8 pixels at a
    32x32 input) and of the final 1x1 conv after stage 3 (1024 channels, 4 pixels);
    feature_dim = 1024 (2048 from width 224)."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 116) -> None:
        super().__init__()
        self.check_width(width)
        self.stem = conv_bn(in_channels, STEM, 3)
        stages, c = [], STEM
        for mult, n in zip((1, 2, 4), UNITS, strict=True):
            stages.append(nn.Sequential(DownUnit(c, width * mult), *(Unit(width * mult) for _ in range(n - 1))))
            c = width * mult
        self.stages = nn.ModuleList(stages)
        self.feature_dim = 2048 if width >= 224 else 1024
        self.last = conv_bn(c, self.feature_dim, 1)
        self.head = nn.Linear(self.feature_dim, num_classes)

    @staticmethod
    def check_width(width: int) -> None:
        if width % 2:
            raise ValueError(f"width {width}: shufflenetv2 splits every stage's channels in two, use an even width")

    def stage_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, maps = self.stem(x), []
        for stage in self.stages:
            h = stage(h)
            maps.append(h)
        maps[-1] = self.last(h)
        return maps

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=(2, 3))
