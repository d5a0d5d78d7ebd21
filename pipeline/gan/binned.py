"""The baseline CcGAN beats: a class-conditional GAN on continuous labels binned into K classes.

As the reference baseline does: the sorted distinct training labels are split into K contiguous
groups of (near) equal count, one class each; a label belongs to the group whose range holds it,
the boundary between two neighbouring groups lying halfway between them. Asked for a label y, the
baseline generates at the class of y's bin. Its generator steps draw classes as the reals' are
drawn (the real batch's labels), not uniformly.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.gan.train import ClassConditioning


class Bins(nn.Module):
    """K label bins given by their K - 1 ascending inner boundaries (normalised labels); a buffer,
    so they travel with G. Bin k holds the labels in (edges[k-1], edges[k]]."""

    edges: torch.Tensor  # (K - 1,), a buffer

    def __init__(self, edges: list[float] | torch.Tensor) -> None:
        super().__init__()
        e = torch.as_tensor(edges, dtype=torch.float32).view(-1)
        if not len(e) or (len(e) > 1 and not bool((e[1:] > e[:-1]).all())):
            raise ValueError("bins need at least one inner boundary, in ascending order")
        self.register_buffer("edges", e)
        self.n_bins = len(e) + 1

    @classmethod
    def of(cls, y: torch.Tensor, n_bins: int) -> Bins:
        """Equal-count bins of the distinct labels of y."""
        u = torch.unique(y.float())
        if not 2 <= n_bins <= len(u):
            raise ValueError(f"n_bins must be in [2, {len(u)}] (the distinct training labels), got {n_bins}")
        groups = torch.tensor_split(u, n_bins)
        return cls([float(a[-1] + b[0]) / 2 for a, b in zip(groups[:-1], groups[1:], strict=True)])

    def classes(self, y: torch.Tensor) -> torch.Tensor:
        return torch.bucketize(y.float(), self.edges.to(y.device))


class BinnedConditioning(ClassConditioning):
    """The binned baseline's batches: as ClassConditioning, with generator steps at classes drawn
    from the training labels (the distribution of the real batch's labels), not uniformly."""

    def g_labels(self, batch_size: int) -> torch.Tensor:
        return self.y[torch.randint(0, len(self.y), (batch_size,))]


class BinnedGenerator(nn.Module):
    """A class-conditional G seen as a continuous one: G(z, y) = inner(z, class of y's bin)."""

    def __init__(self, inner: nn.Module, bins: Bins) -> None:
        super().__init__()
        self.inner, self.bins = inner, bins

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.inner(z, self.bins.classes(y))
