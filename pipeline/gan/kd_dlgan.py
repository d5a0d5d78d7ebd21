"""KD-DLGAN (ALGORITHMS.md section 4): a frozen pretrained encoder distilled into the discriminator
of a GAN trained on little data.

D gets a linear head D_f on its features, of the encoder's width d (build_gan's `d_features`); its
d outputs come last in D's output columns. With I(x) the encoder's features and T (K, d) one
prototype per class, D's loss adds
- AGKD (aggregated generative KD), on the reals r and fakes f of a D step:
  |I(r) - D_f(r)| + |I(f) - D_f(f)| + m_i (|I(r) - D_f(f)| + |I(f) - D_f(r)|), each |.| the mean
  absolute difference over the d features, averaged over the batch; m_i is 1 with probability p
  for each (real i, fake i) pair (the crossed targets), else 0;
- CGKD (correlated generative KD): || C(I(x)) - C(D_f(x)) ||^2 over the images x = reals and
  fakes, averaged over x, with C(v) = norm(v T^T) the row-normalised (L2) correlation of v with
  the K prototypes.
G's loss is unchanged. Both terms are computed on the images D saw (after DiffAugment, if any).

The encoder (pipeline.gan.encoders) is one of: the experiment's own teacher trained on the full
training split, a classifier checkpoint of another run, a TorchScript module, or a local
open_clip model; its weights never change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.gan.kinds import Objective

if TYPE_CHECKING:
    from pipeline.gan.train import DBatch

Tensor = torch.Tensor


def agkd(i_real: Tensor, f_real: Tensor, i_fake: Tensor, f_fake: Tensor, crossed: Tensor) -> Tensor:
    """AGKD on n (real, fake) pairs: I(.) targets i_*, D_f outputs f_*, all (n, d); `crossed` (n,)
    is 1 where a pair takes the crossed targets too (drawn with probability p by the caller)."""

    def l1(a: Tensor, b: Tensor) -> Tensor:  # (n,): mean |a - b| over the features of each image
        return (a - b).abs().mean(1)

    cross = crossed.to(f_real.dtype) * (l1(i_real, f_fake) + l1(i_fake, f_real))
    return (l1(i_real, f_real) + l1(i_fake, f_fake) + cross).mean()


def correlation(v: Tensor, prototypes: Tensor) -> Tensor:
    """C(v): each row of v T^T divided by its L2 norm."""
    return F.normalize(v @ prototypes.T, dim=1)


def cgkd(i: Tensor, f: Tensor, prototypes: Tensor) -> Tensor:
    """CGKD: squared L2 distance between the correlations of I(x) and of D_f(x) with the
    prototypes, averaged over the images."""
    return (correlation(i, prototypes) - correlation(f, prototypes)).pow(2).sum(1).mean()


class KdDlGan(Objective):
    """The objective of a GAN kind (`inner`) plus KD-DLGAN's terms in D's loss. D's output has the
    encoder's d features last; the inner objective sees the columns before them."""

    def __init__(
        self,
        inner: Objective,
        encoder: nn.Module,
        prototypes: Tensor,
        *,
        agkd_weight: float,
        cgkd_weight: float,
        p: float,
    ) -> None:
        super().__init__(inner.loss, inner.num_classes, inner.n_continuous)
        self.inner, self.encoder, self.prototypes = inner, encoder, prototypes
        self.agkd_weight, self.cgkd_weight, self.p = agkd_weight, cgkd_weight, p
        self.dim = prototypes.shape[1]

    def to(self, device: torch.device) -> KdDlGan:
        self.encoder.to(device)
        self.prototypes = self.prototypes.to(device)
        return self

    def _split(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """D's outputs without D_f (as the inner objective reads them), and D_f's."""
        rest = out[:, : -self.dim]
        return (rest.squeeze(1) if rest.shape[1] == 1 else rest), out[:, -self.dim :]

    def d_input(self, batch: DBatch, x_fake: Tensor) -> tuple[Tensor, Tensor]:
        return self.inner.d_input(batch, x_fake)

    def d_loss(self, out: Tensor, batch: DBatch, z: Tensor, x: Tensor) -> Tensor:
        rest, f = self._split(out)
        loss = self.inner.d_loss(rest, batch, z, x)
        n, m = len(batch.x_real), len(batch.y_gen)
        with torch.no_grad():
            i = self.encoder(x[: n + m]).float()
        if self.agkd_weight:
            k = min(n, m)
            crossed = torch.rand(k, device=out.device) < self.p
            loss = loss + self.agkd_weight * agkd(i[:k], f[:k], i[n : n + k], f[n : n + k], crossed)
        if self.cgkd_weight:
            loss = loss + self.cgkd_weight * cgkd(i, f[: n + m], self.prototypes)
        return loss

    def g_input(self, x_fake: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.inner.g_input(x_fake, y)

    def g_loss(self, out: Tensor, y: Tensor, z: Tensor) -> Tensor:
        return self.inner.g_loss(self._split(out)[0], y, z)


@torch.no_grad()
def class_prototypes(encoder: nn.Module, x: Tensor, y: Tensor, num_classes: int, batch_size: int = 512) -> Tensor:
    """T without a text side: the mean encoder feature of each class's images (labels < 0, i.e.
    unlabelled, are left out); (num_classes, d)."""
    feats = torch.cat([encoder(x[s : s + batch_size]).float() for s in range(0, len(x), batch_size)])
    keep = y >= 0
    sums = torch.zeros(num_classes, feats.shape[1]).index_add_(0, y[keep], feats[keep])
    counts = torch.bincount(y[keep], minlength=num_classes).clamp(min=1).unsqueeze(1)
    return sums / counts
