"""CcGAN's vicinities: which real images and which fake labels stand in for a target label.

All labels here are normalised to [0, 1]. One call draws a whole batch with tensor ops
(sorted labels + searchsorted); the reference code loops over samples in Python, and this is
the hot path of CcGAN training.

HVDL (hard): reals with |y_i - y'| <= kappa, chosen uniformly; fake labels uniform in
[y' - kappa, y' + kappa] cut to [0, 1]; every weight 1.
SVDL (soft): reals with (y_i - y')^2 <= -ln(1e-3) / nu (weights below 1e-3 are dropped), chosen
uniformly, each pair's loss weighted by w = exp(-nu (y_i - y')^2); fake labels uniform in the
same window, weighted the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

Tensor = torch.Tensor
Kind = Literal["hard", "soft"]
SOFT_CUTOFF = 1e-3  # SVDL drops pairs whose weight would fall below this


def rule_of_thumb(y: Tensor, m_kappa: float, gap: float | None = None) -> tuple[float, float, float]:
    """(sigma, kappa, nu) from normalised training labels y (one entry per training sample).

    sigma = 1.06 * std(y) * N^(-1/5) (Silverman; population std, N = len(y));
    kappa = m_kappa * gap, gap the largest distance between consecutive sorted distinct labels
    (or the given `gap`, e.g. 1/120 for the circle); nu = 1 / kappa^2.
    """
    if y.dim() != 1 or len(y) < 2:
        raise ValueError(f"need at least 2 labels in a 1-d tensor, got shape {tuple(y.shape)}")
    y64 = y.double()
    sigma = 1.06 * float(y64.std(unbiased=False)) * len(y) ** (-1 / 5)
    if gap is None:
        distinct = torch.unique(y64)
        if len(distinct) < 2:
            raise ValueError("the rule of thumb needs at least 2 distinct labels")
        gap = float((distinct[1:] - distinct[:-1]).max())
    kappa = m_kappa * gap
    return sigma, kappa, 1.0 / kappa**2


def uniform_in_window(centres: Tensor, r: float) -> Tensor:
    """One label uniform on [max(0, c - r), min(1, c + r)] for each centre c: its window cut to the
    label range, not c + U(-r, r) clipped, which would pile mass exactly on 0 and 1."""
    lo, hi = (centres - r).clamp(min=0.0), (centres + r).clamp(max=1.0)
    return lo + torch.rand(len(centres)) * (hi - lo).clamp(min=0.0)


class VicinalBatch(NamedTuple):
    """One discriminator batch: D sees real x[real_index] and G(z, fake_labels), both at `targets`."""

    real_index: Tensor  # (n,) int64 indices into the training set
    targets: Tensor  # (n,) y' = y_j + e
    fake_labels: Tensor  # (n,) labels G generates at, uniform on the vicinity of y' cut to [0, 1]
    w_real: Tensor | None  # SVDL weights (None for HVDL: all 1)
    w_fake: Tensor | None


@dataclass(frozen=True)
class Vicinity:
    kind: Kind
    sigma: float  # std of the noise added to target labels
    kappa: float  # HVDL half-width
    nu: float  # SVDL weight decay

    @property
    def radius(self) -> float:
        """Half-width of the window in which reals are looked for and fake labels drawn."""
        return self.kappa if self.kind == "hard" else math.sqrt(-math.log(SOFT_CUTOFF) / self.nu)

    def weight(self, y: Tensor, targets: Tensor) -> Tensor | None:
        return None if self.kind == "hard" else torch.exp(-self.nu * (y - targets) ** 2)


class VicinalSampler:
    """Draws vicinal batches for training labels y (normalised to [0, 1])."""

    def __init__(self, y: Tensor, vicinity: Vicinity, max_redraws: int = 1000) -> None:
        if y.dim() != 1 or not len(y):
            raise ValueError(f"labels must be a non-empty 1-d tensor, got shape {tuple(y.shape)}")
        if vicinity.kind not in ("hard", "soft"):
            raise ValueError(f"unknown vicinity kind {vicinity.kind!r} (known: hard, soft)")
        self.vicinity = vicinity
        self.y = y.float()
        self.sorted, self.order = torch.sort(self.y)
        self.distinct = torch.unique(self.y)
        self.max_redraws = max_redraws

    def bases(self, n: int) -> Tensor:
        """y_j: n labels drawn uniformly among the distinct training labels."""
        return self.distinct[torch.randint(len(self.distinct), (n,))]

    def noisy(self, base: Tensor) -> Tensor:
        """y' = y_j + e, e ~ N(0, sigma^2)."""
        return base + self.vicinity.sigma * torch.randn(len(base))

    def window(self, targets: Tensor) -> tuple[Tensor, Tensor]:
        """[lo, hi): the positions in the sorted labels with |y_i - y'| <= radius."""
        r = self.vicinity.radius
        lo = torch.searchsorted(self.sorted, targets - r, side="left")
        hi = torch.searchsorted(self.sorted, targets + r, side="right")
        return lo, hi

    def draw(self, n: int) -> VicinalBatch:
        """A batch of n (real, fake-label) pairs; a target whose vicinity holds no real image
        gets its noise drawn again (the noise only: y_j is kept)."""
        base = self.bases(n)
        targets = self.noisy(base)
        lo, hi = self.window(targets)
        empty = (hi <= lo).nonzero().squeeze(1)  # in ascending order, as a boolean mask would pick them
        for _ in range(self.max_redraws):
            if not len(empty):
                break
            t = self.noisy(base[empty])
            t_lo, t_hi = self.window(t)
            targets[empty], lo[empty], hi[empty] = t, t_lo, t_hi
            empty = empty[t_hi <= t_lo]
        else:
            raise RuntimeError(
                f"no real label within {self.vicinity.radius:.4g} of some target after {self.max_redraws} redraws"
            )
        pos = lo + (torch.rand(n) * (hi - lo)).long().clamp_max(hi - lo - 1)
        real_index = self.order[pos]
        fake_labels = self.fake_labels(targets)
        return VicinalBatch(
            real_index=real_index,
            targets=targets,
            fake_labels=fake_labels,
            w_real=self.vicinity.weight(self.y[real_index], targets),
            w_fake=self.vicinity.weight(fake_labels, targets),
        )

    def fake_labels(self, targets: Tensor) -> Tensor:
        """Labels for D's fakes: uniform on the vicinity of each target cut to [0, 1] (never empty:
        some real label in [0, 1] lies within the radius of every target)."""
        return uniform_in_window(targets, self.vicinity.radius)

    def g_labels(self, n: int) -> Tensor:
        """Labels for a generator step: drawn like the targets, clipped to [0, 1]."""
        return self.noisy(self.bases(n)).clamp(0.0, 1.0)
