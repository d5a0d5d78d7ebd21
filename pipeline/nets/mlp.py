"""Small MLPs for point data (the circle simulation): a conditional G, a conditional D and a
feature backbone for regressors. The label is concatenated to the input, encoded by
`label_input`: "class" (one-hot), "nli" (the scalar label; with `periodic`, (sin 2 pi y, cos 2 pi y)
as in the CcGAN paper's circle, where y is the normalised angle) or "ili" (a frozen y2h embedding).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.nets.backbone import Backbone
from pipeline.nets.labels import EMBED_DIM, Y2H, check_label_input, frozen


class LabelEncoder(nn.Module):
    def __init__(self, label_input: str, num_classes: int = 0, periodic: bool = False) -> None:
        super().__init__()
        check_label_input(label_input, num_classes)
        self.label_input, self.num_classes, self.periodic = label_input, num_classes, periodic
        self.y2h = frozen(Y2H()) if label_input == "ili" else None
        self.dim = {"class": num_classes, "nli": 2 if periodic else 1, "ili": EMBED_DIM}[label_input]

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.label_input == "class":
            return F.one_hot(y, self.num_classes).float()
        if self.y2h is not None:
            return self.y2h(y)
        y = y.view(-1, 1).float()
        return torch.cat([torch.sin(2 * math.pi * y), torch.cos(2 * math.pi * y)], 1) if self.periodic else y


def _stack(d_in: int, hidden: int, depth: int, norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += (
            [nn.Linear(d_in if i == 0 else hidden, hidden)] + ([nn.BatchNorm1d(hidden)] if norm else []) + [nn.ReLU()]
        )
    return layers


class MLPGenerator(nn.Module):
    """(z, label) -> point: `depth` hidden layers with BN and ReLU, a linear output."""

    def __init__(
        self,
        z_dim: int,
        out_dim: int = 2,
        hidden: int = 100,
        depth: int = 4,
        *,
        label_input: str = "nli",
        num_classes: int = 0,
        periodic: bool = False,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.label = LabelEncoder(label_input, num_classes, periodic)
        self.net = nn.Sequential(*_stack(z_dim + self.label.dim, hidden, depth, norm=True), nn.Linear(hidden, out_dim))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.label(y)], 1))


class MLPDiscriminator(nn.Module):
    """(point, label) -> logit: `depth` hidden ReLU layers."""

    def __init__(
        self,
        in_dim: int = 2,
        hidden: int = 100,
        depth: int = 4,
        *,
        label_input: str = "nli",
        num_classes: int = 0,
        periodic: bool = False,
    ) -> None:
        super().__init__()
        self.label = LabelEncoder(label_input, num_classes, periodic)
        self.net = nn.Sequential(*_stack(in_dim + self.label.dim, hidden, depth, norm=False), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, self.label(y)], 1)).squeeze(1)


class MLPBackbone(Backbone):
    """Features of a point for regressors and the ILI embedding net; `features(x)` and `feature_dim`."""

    def __init__(self, in_dim: int, num_outputs: int = 1, width: int = 100, depth: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(*_stack(in_dim, width, depth, norm=True))
        self.feature_dim = width
        self.head = nn.Linear(width, num_outputs)

    def stage_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.body(x)]  # one stage, not spatial
