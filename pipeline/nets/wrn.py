"""Wide ResNet (Zagoruyko and Komodakis, 2016), the pre-activation CIFAR form: WRN-d-k.

A 3x3 stem with 16 channels, three stages of (d - 4) / 6 pre-activation basic blocks (BN, ReLU,
3x3 conv, BN, ReLU, 3x3 conv) with 16k, 32k and 64k channels (the last two stages halve the
map), then a final BN and ReLU and global average pooling. `width` is the first stage's channels,
16k: 32 gives WRN-40-2 (2.2M parameters with 100 classes), 16 WRN-40-1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.nets.backbone import Backbone

STEM = 16  # the stem's channels, whatever k is


class PreActBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        # a 1x1 projection of the pre-activated input where the shape changes
        self.shortcut = None if stride == 1 and c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(a))))
        return out + (x if self.shortcut is None else self.shortcut(a))


class WideResNet(Backbone):
    """WRN-`depth`-k with k = width / 16. Stage maps: the residual sums after stages 1 and 2 (pre-
    activation: they can be negative) and the final BN-ReLU map after stage 3 (width, 2 width and
    4 width channels at full, 1/2 and 1/4 size); feature_dim = 4 width."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, depth: int = 40) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n + 4 with n >= 1, got {depth}")
        n = (depth - 4) // 6
        self.stem = nn.Conv2d(in_channels, STEM, 3, 1, 1, bias=False)
        stages, c = [], STEM
        for i, mult in enumerate((1, 2, 4)):
            blocks = []
            for b in range(n):
                blocks.append(PreActBlock(c, width * mult, 2 if i > 0 and b == 0 else 1))
                c = width * mult
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.bn = nn.BatchNorm2d(c)
        self.feature_dim = c
        self.head = nn.Linear(c, num_classes)

    def stage_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, maps = self.stem(x), []
        for stage in self.stages:
            h = stage(h)
            maps.append(h)
        maps[-1] = F.relu(self.bn(h))
        return maps

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=(2, 3))
