"""Classifiers used as teachers and students: Backbones in stages (forward(x) -> logits,
features(x) -> penultimate features, an int `feature_dim`, stage_maps(x) for distillation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.nets.backbone import Backbone


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(Backbone):
    """CIFAR-style ResNet: a 3x3 stem, three stages (width, 2w, 4w), global average pooling."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, blocks: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, c = [], width
        for stage, mult in enumerate((1, 2, 4)):
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(BasicBlock(c, width * mult, stride))
                c = width * mult
        self.body = nn.Sequential(*layers)
        self.blocks = blocks
        self.feature_dim = c
        self.head = nn.Linear(c, num_classes)

    def stage_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps after each of the three stages (width, 2w, 4w channels; full, 1/2, 1/4 size)."""
        h, maps = self.stem(x), []
        for i, block in enumerate(self.body):
            h = block(h)
            if (i + 1) % self.blocks == 0:
                maps.append(h)
        return maps

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=(2, 3))


class SmallCNN(Backbone):
    """A deliberately small student: two conv-pool stages and a linear head."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, 1, 1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
        )
        self.feature_dim = 8 * width
        self.head = nn.Linear(self.feature_dim, num_classes)

    def stage_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps after each conv stage (width, then 2 width channels; both at half the input size)."""
        h1 = self.body[:4](x)
        return [h1, self.body[4:7](h1)]

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return self.body[7](h).flatten(1)
