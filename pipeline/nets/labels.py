"""CcGAN's improved label input (ILI): a regression net x -> h -> y and the map y2h back to h.

Training happens in pipeline.gan.embedding: first the regression net (MSE on normalised labels),
then y2h so that the regression net's frozen h -> y head maps y2h(y) back to y.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.nets.backbone import Backbone

EMBED_DIM = 128
LABEL_INPUTS = ("class", "nli", "ili")


def check_label_input(label_input: str, num_classes: int) -> None:
    if label_input not in LABEL_INPUTS:
        raise ValueError(f"unknown label_input {label_input!r} (known: {', '.join(LABEL_INPUTS)})")
    if label_input == "class" and num_classes < 1:
        raise ValueError("label_input 'class' needs num_classes >= 1")


def frozen(module: nn.Module) -> nn.Module:
    """Mark every parameter as not trainable (optimisers skip it; EMA copies it unchanged)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class Y2H(nn.Module):
    """y in [0, 1] -> h in R^128_+: an MLP with GroupNorm and ReLU (h is non-negative like the
    regression net's ReLU embedding)."""

    def __init__(self, dim: int = EMBED_DIM, depth: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(1 if i == 0 else dim, dim), nn.GroupNorm(8, dim), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(dim, dim), nn.ReLU())

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y.view(-1, 1).float())


class LabelEmbedNet(nn.Module):
    """x -> h (128-d, ReLU) -> y: a backbone's features, a linear bottleneck and a linear head."""

    def __init__(self, backbone: Backbone, dim: int = EMBED_DIM) -> None:
        super().__init__()
        self.backbone = backbone
        self.bottleneck = nn.Sequential(nn.Linear(backbone.feature_dim, dim), nn.BatchNorm1d(dim), nn.ReLU())
        self.head = nn.Linear(dim, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(self.backbone.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x)).squeeze(1)
