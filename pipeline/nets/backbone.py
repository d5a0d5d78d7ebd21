"""The interface every classifier, regressor and feature extractor shares."""

from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """A net with penultimate features, features(x) -> (N, feature_dim), and a head on them
    (class logits, or a regressor's normalised label): forward(x) = head(features(x)). Teachers,
    students, DRE's feature extractors, ILI's embedding net and the FID helpers rely on it."""

    feature_dim: int
    head: nn.Module

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
