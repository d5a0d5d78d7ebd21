"""A trained subsampler (feature extractor + ratio net + optional label window) and the one way
the pipeline draws fakes at given labels: plainly, or through DRE rejection sampling."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.gan.train import sample
from pipeline.nets.backbone import Backbone
from pipeline.subsample.ratio import RatioNet
from pipeline.subsample.sampling import RSStats, collect, window_mask
from pipeline.utils import Progress, label_positions

Tensor = torch.Tensor

METHODS = ("none", "dre", "cdre")
SHOW_LABELS = 5  # labels in an accepted-vs-rejected picture


@dataclass(frozen=True)
class Subsampler:
    """score(x, y) for rejection sampling: psi of x's features (given y when conditional), and
    for continuous labels the window |phi's predicted label - y| <= zeta (zeta None: no window)."""

    features: Backbone
    ratio: RatioNet
    zeta: float | None = None

    @torch.no_grad()
    def score(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        self.features.eval()
        self.ratio.eval()
        h = self.features.features(x)
        psi = self.ratio(h, y if self.ratio.conditional else None)
        if self.zeta is None:
            return psi, torch.ones_like(psi, dtype=torch.bool)
        return psi, window_mask(self.features.head(h).view(-1), y, self.zeta)


def draw(
    G: nn.Module,
    z_dim: int,
    labels: Tensor,
    n_per_label: int,
    subsampler: Subsampler | None = None,
    *,
    burnin: int = 100,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> tuple[Tensor, Tensor, RSStats | None]:
    """n_per_label fakes at each label, grouped by label in the order of `labels`: (x, y, stats).

    Without a subsampler they are G's plain samples (stats None); with one, rejection-sampled."""
    if subsampler is None:
        y = labels.repeat_interleave(n_per_label)
        x = sample(G, y, z_dim, batch_size)
        if progress:
            progress(len(y), {})
        return x, y, None

    def generate(y: Tensor) -> Tensor:
        return sample(G, y, z_dim, batch_size)

    x, y, _, stats = collect(
        generate, subsampler.score, labels, n_per_label, burnin=burnin, batch_size=batch_size, progress=progress
    )
    # chunks come in acceptance order; group them by label like the plain branch
    order = torch.sort(label_positions(labels, y), stable=True).indices
    return x[order], y[order], stats


def subsampling_report(stats: RSStats | None, method: str) -> dict:
    """The filtered set's metadata: per-label acceptance rates and the ratio bounds M."""
    if stats is None:
        return {"method": method}
    return {
        "method": method,
        **stats.summary(),
        "per_label": {
            "label": [float(v) for v in stats.labels],
            "acceptance_rate": [round(float(v), 6) for v in stats.acceptance_rate],
            "M": [round(float(v), 6) for v in stats.M],
            "accepted": stats.accepted.tolist(),
        },
    }


def accepted_vs_rejected(
    G, z_dim: int, sub: Subsampler, stats: RSStats, labels: torch.Tensor, n: int = 8
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each label: fresh candidates split by one rejection-sampling draw at that label's final M."""
    rows = []
    for lab in labels:
        y = lab.repeat(8 * n)
        x = sample(G, y, z_dim)
        psi, ok = sub.score(x, y)
        M = stats.M[(stats.labels == lab).nonzero()[0, 0]]
        keep = ok & (torch.rand(len(y)) * M <= psi)
        rows.append((x[keep][:n], x[~keep][:n]))
    return rows
