"""VGG8 with batch norm, the CIFAR student of RepDistiller (Tian et al., CRD, 2020).

Five stages of one 3x3 conv (BN, ReLU) each, with width, 2, 4, 8 and 8 x width channels, a 2x2
max pool after each of the first four, global average pooling and one linear layer: five conv
layers and the classifier. `width` is the first conv's channels: 64 gives RepDistiller's vgg8
(about 4.0M parameters with 100 classes, nearly all in the last two convs).
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.nets.backbone import Backbone

MULTS = (1, 2, 4, 8, 8)


class VGG8(Backbone):
    """Stage maps: the ReLU output of each of the five convs (width ... 8 width channels; at a
    32x32 input 32, 16, 8, 4 and 2 pixels); feature_dim = 8 width. The pools round up (ceil mode),
    so inputs smaller than 32 pixels still leave a map at every stage."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        stages, c = [], in_channels
        for mult in MULTS:
            stages.append(
                nn.Sequential(nn.Conv2d(c, width * mult, 3, 1, 1, bias=False), nn.BatchNorm2d(width * mult), nn.ReLU())
            )
            c = width * mult
        self.stages = nn.ModuleList(stages)
        self.down = nn.MaxPool2d(2, ceil_mode=True)
        self.feature_dim = c
        self.head = nn.Linear(c, num_classes)

    def stage_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for i, stage in enumerate(self.stages):
            x = stage(self.down(x) if i else x)
            maps.append(x)
        return maps

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=(2, 3))
