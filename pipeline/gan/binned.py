"""The baseline CcGAN beats: a class-conditional GAN on continuous labels binned into K classes.

The K bin centres are evenly spaced over the training labels' range (both ends included), and
a label belongs to the bin of its nearest centre. Asked for a label y, the baseline generates
at the class of y's bin, i.e. at that bin's centre.
"""

from __future__ import annotations

import torch
from torch import nn


class Bins(nn.Module):
    """K bin centres over [lo, hi] (normalised labels); kept as buffers so they travel with G."""

    range: torch.Tensor  # (lo, hi), a buffer

    def __init__(self, lo: float = 0.0, hi: float = 1.0, n_bins: int = 2) -> None:
        super().__init__()
        if n_bins < 2 or not hi > lo:
            raise ValueError(f"need n_bins >= 2 and hi > lo, got {n_bins}, [{lo}, {hi}]")
        self.register_buffer("range", torch.tensor([lo, hi], dtype=torch.float32))
        self.n_bins = n_bins

    @classmethod
    def of(cls, y: torch.Tensor, n_bins: int) -> Bins:
        return cls(float(y.min()), float(y.max()), n_bins)

    def classes(self, y: torch.Tensor) -> torch.Tensor:
        lo, hi = self.range
        return torch.round((y - lo) / (hi - lo) * (self.n_bins - 1)).long().clamp(0, self.n_bins - 1)

    def centres(self) -> torch.Tensor:
        lo, hi = self.range
        return lo + (hi - lo) * torch.arange(self.n_bins) / (self.n_bins - 1)


class BinnedGenerator(nn.Module):
    """A class-conditional G seen as a continuous one: G(z, y) = inner(z, class of y's bin)."""

    def __init__(self, inner: nn.Module, bins: Bins) -> None:
        super().__init__()
        self.inner, self.bins = inner, bins

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.inner(z, self.bins.classes(y))
