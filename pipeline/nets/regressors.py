"""The regression nets of the CcGAN and cGAN-KD reference code at 64x64, as Backbones.

- VGG-11/13/16/19 with batch norm (the cGAN-KD teachers: VGG16 on RC-49, VGG11 on UTKFace, VGG19 on
  Steering Angle): five groups of 3x3 convs (BN, ReLU) with width, 2, 4, 8 and 8 x width channels,
  each followed by a 2x2 max pool (a 64x64 image leaves a 2x2 map), then the reference's head: the
  2x2 map flattened, two linear layers of 8 x width units (BN, ReLU) and a linear output.
- ResNet-18/34 for 64x64 images (the CcGAN code's ResNet34_regre / ResNet34_class / ResNet34_embed,
  the evaluation and label-embedding nets): a 3x3 stem at full size, then four stages of basic
  blocks with width, 2, 4 and 8 x width channels, each halving the map (64 -> 32 -> 16 -> 8 -> 4),
  global average pooling.
- ResNet-20, the CIFAR ResNet-(6n+2) with n = 3 (a cGAN-KD student): pipeline.nets.classifiers'
  ResNet with three blocks per stage.

`width` is the first stage's channels: 64 gives the papers' nets (16 for ResNet-20). Any image size
works (the VGG head pools its last map to 2x2).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.nets.backbone import Backbone
from pipeline.nets.classifiers import BasicBlock, ResNet

# convs per group (each group: width x 1, 2, 4, 8, 8 channels, then a max pool)
VGG_CONVS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
VGG_MULTS = (1, 2, 4, 8, 8)
RESNET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


class VGG(Backbone):
    """Stage maps: each conv group's ReLU output before its pool (width ... 8 width channels; 64, 32, 16,
    8 and 4 pixels at a 64x64 input); feature_dim = 8 width (the second linear layer of the head)."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 64, *, depth: int = 16) -> None:
        super().__init__()
        if depth not in VGG_CONVS:
            raise ValueError(f"VGG depth {depth}: use one of {', '.join(map(str, VGG_CONVS))}")
        groups, c = [], in_channels
        for n_convs, mult in zip(VGG_CONVS[depth], VGG_MULTS, strict=True):
            layers: list[nn.Module] = []
            for _ in range(n_convs):
                layers += [nn.Conv2d(c, width * mult, 3, 1, 1), nn.BatchNorm2d(width * mult), nn.ReLU()]
                c = width * mult
            groups.append(nn.Sequential(*layers))
        self.groups = nn.ModuleList(groups)
        hidden = 8 * width
        self.fc = nn.Sequential(
            nn.Linear(c * 2 * 2, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
        )
        self.feature_dim = hidden
        self.head = nn.Linear(hidden, num_classes)

    def stage_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for i, group in enumerate(self.groups):
            x = group(F.max_pool2d(x, 2, ceil_mode=True) if i else x)
            maps.append(x)
        return maps

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        h = F.adaptive_avg_pool2d(F.max_pool2d(h, 2, ceil_mode=True), 2)  # 2x2 at a 64x64 input, as the reference
        return self.fc(h.flatten(1))


class ResNet64(Backbone):
    """ResNet-18/34 (basic blocks) for 64x64 inputs; stage maps after each of the four stages."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 64, *, depth: int = 34) -> None:
        super().__init__()
        if depth not in RESNET_BLOCKS:
            raise ValueError(f"ResNet depth {depth}: use one of {', '.join(map(str, RESNET_BLOCKS))}")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        stages, c = [], width
        for n_blocks, mult in zip(RESNET_BLOCKS[depth], (1, 2, 4, 8), strict=True):
            blocks = [
                BasicBlock(c if b == 0 else width * mult, width * mult, 2 if b == 0 else 1) for b in range(n_blocks)
            ]
            stages.append(nn.Sequential(*blocks))
            c = width * mult
        self.stages = nn.ModuleList(stages)
        self.feature_dim = c
        self.head = nn.Linear(c, num_classes)

    def stage_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, maps = self.stem(x), []
        for stage in self.stages:
            h = stage(h)
            maps.append(h)
        return maps

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=(2, 3))


# name -> builder(in_channels, num_classes, width=...); merged into pipeline.nets.CLASSIFIERS
REGRESSION_NETS: dict[str, partial] = {
    **{f"vgg{d}": partial(VGG, depth=d) for d in VGG_CONVS},
    **{f"resnet{d}": partial(ResNet64, depth=d) for d in RESNET_BLOCKS},
    "resnet20": partial(ResNet, blocks=3),
}


def register(registry: dict) -> None:
    """Add REGRESSION_NETS to `registry`; a name that is already there must be the very same net
    (e.g. resnet20 from the CIFAR nets), else it is a clash to resolve, not to override silently."""
    for name, builder in REGRESSION_NETS.items():
        have = registry.get(name)
        same = have is not None and (getattr(have, "func", have), getattr(have, "keywords", {})) == (
            builder.func,
            builder.keywords,
        )
        if have is not None and not same:
            raise RuntimeError(f"classifier net {name!r} is registered twice, as two different nets")
        registry.setdefault(name, builder)
