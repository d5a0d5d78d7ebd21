"""The interface every classifier, regressor and feature extractor shares."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class KDOut(NamedTuple):
    """One forward pass with what distillation methods compare: the output (class logits or the
    regressor's normalised label), the feature map after each stage (spatial (N, C, H, W) for
    image nets) and the penultimate embedding (N, feature_dim)."""

    logits: torch.Tensor
    maps: list[torch.Tensor]
    embedding: torch.Tensor


class Backbone(nn.Module):
    """A net in stages: stage_maps(x) -> the feature map after each stage; pool(last map) ->
    penultimate features (N, feature_dim); a head on them (class logits, or a regressor's
    normalised label). features(x) = pool(last map), forward(x) = head(features(x)), and
    forward_kd(x) gives all three in one pass. Teachers, students, DRE's feature extractors, ILI's
    embedding net, the FID helpers and the distillation methods rely on it."""

    feature_dim: int
    head: nn.Module

    def stage_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return h

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stage_maps(x)[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward_kd(self, x: torch.Tensor) -> KDOut:
        maps = self.stage_maps(x)
        embedding = self.pool(maps[-1])
        return KDOut(self.head(embedding), maps, embedding)
