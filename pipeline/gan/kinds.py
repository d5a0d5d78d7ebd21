"""GAN kinds (ALGORITHMS.md section 4): the nets each kind trains, the labels it uses and its
losses on D's outputs, chosen by `gan.kind` from KINDS.

Every kind trains in the one loop of pipeline.gan.train: an `Objective` says what D sees in a D
step and in a G step (`d_input`, `g_input`) and turns D's outputs into the loss (`d_loss`, which
also gets the images D saw, and `g_loss`). D returns (N,) adversarial logits, or (N, 1 + A) with
A auxiliary logits after the adversarial one. The adversarial part is the loss chosen by
`gan.loss` (pipeline.gan.losses).

- projection: SNGAN/BigGAN projection cGAN (gan.arch's nets; CcGAN for continuous labels).
- s3gan: the projection cGAN with fewer labels (S3GAN): D also has a 4-way rotation head (weight
  1 on rotated reals for D, 0.2 on rotated fakes for G) and a linear class head trained with CE on
  the labelled reals; unlabelled reals take its argmax (gradient stopped) as their label.
- dcgan: unconditional DCGAN.   cdcgan: one-hot label concatenated to z and to D's input.
- acgan: D has an auxiliary K-way classifier; D adds CE on reals and fakes, G on its fakes.
- 2ngan: 2N-GAN (ADC-GAN): a 2K-way classifier, real class k -> 2k, fake class k -> 2k + 1; G is
  pulled to 2y and pushed from 2y + 1.
- infogan: unsupervised; G takes a categorical code c (K values) and continuous codes (the first
  `gan.info_continuous` entries of z); D's head Q predicts them, and D (through Q) and G both
  minimise CE(Q_cat, c) + 0.1 * MSE(Q_cont, codes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from pipeline.errors import ParamsError
from pipeline.gan.losses import GanLoss, get_loss

if TYPE_CHECKING:
    from pipeline.gan.train import DBatch

Tensor = torch.Tensor

ROTATION_D = 1.0  # S3GAN: weight of the rotation loss on rotated reals in D's loss
ROTATION_G = 0.2  # and on rotated fakes in G's loss
INFO_CONTINUOUS = 0.1  # InfoGAN: weight of the continuous codes' MSE


def adversarial(out: Tensor) -> Tensor:
    """The adversarial logits of D's outputs."""
    return out if out.ndim == 1 else out[:, 0]


def rotations(n: int, device: torch.device) -> Tensor:
    """The rotation class of each of n images: image i is turned by (i mod 4) x 90 degrees (no
    random draw, so every rank of a distributed run rotates its share alike)."""
    return torch.arange(n, device=device) % 4


def rotate(x: Tensor) -> tuple[Tensor, Tensor]:
    """The images x turned by their `rotations` (anticlockwise), and those rotation classes."""
    r = rotations(len(x), x.device)
    out = torch.empty_like(x)
    for k in range(4):
        out[k::4] = torch.rot90(x[k::4], k, (2, 3))
    return out, r


def _ce(logits: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(logits.float(), target)


class Objective:
    """The adversarial loss alone (projection cGAN, CcGAN, DCGAN, cDCGAN). D judges reals and
    fakes as one batch, each at its labels."""

    def __init__(self, loss: GanLoss, num_classes: int = 0, n_continuous: int = 0) -> None:
        self.loss, self.num_classes, self.n_continuous = loss, num_classes, n_continuous

    def to(self, device: torch.device) -> Objective:
        """Move what the objective holds (KD-DLGAN's encoder) to `device`."""
        return self

    def d_input(self, batch: DBatch, x_fake: Tensor) -> tuple[Tensor, Tensor]:
        return torch.cat([batch.x_real, x_fake]), torch.cat([batch.y_real, batch.y_fake])

    def d_loss(self, out: Tensor, batch: DBatch, z: Tensor, x: Tensor) -> Tensor:
        n, m = len(batch.x_real), len(batch.y_gen)
        return self.loss.d(adversarial(out[:n]), adversarial(out[n : n + m]), batch.w_real, batch.w_fake)

    def g_input(self, x_fake: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return x_fake, y

    def g_loss(self, out: Tensor, y: Tensor, z: Tensor) -> Tensor:
        return self.loss.g(adversarial(out))


class ACGan(Objective):
    def d_loss(self, out: Tensor, batch: DBatch, z: Tensor, x: Tensor) -> Tensor:
        n = len(batch.x_real)
        aux = _ce(out[:n, 1:], batch.y_real) + _ce(out[n:, 1:], batch.y_fake)
        return super().d_loss(out, batch, z, x) + aux

    def g_loss(self, out: Tensor, y: Tensor, z: Tensor) -> Tensor:
        return super().g_loss(out, y, z) + _ce(out[:, 1:], y)


class TwoNGan(Objective):
    """2N-GAN / ADC-GAN: real class k is 2k, fake class k is 2k + 1."""

    def d_loss(self, out: Tensor, batch: DBatch, z: Tensor, x: Tensor) -> Tensor:
        n = len(batch.x_real)
        aux = _ce(out[:n, 1:], 2 * batch.y_real) + _ce(out[n:, 1:], 2 * batch.y_fake + 1)
        return super().d_loss(out, batch, z, x) + aux

    def g_loss(self, out: Tensor, y: Tensor, z: Tensor) -> Tensor:
        return super().g_loss(out, y, z) + _ce(out[:, 1:], 2 * y) - _ce(out[:, 1:], 2 * y + 1)


class InfoGan(Objective):
    """The fakes' codes: y is the categorical one, z[:, :n_continuous] the continuous ones."""

    def info(self, q: Tensor, c: Tensor, z: Tensor) -> Tensor:
        k, n = self.num_classes, self.n_continuous
        return _ce(q[:, :k], c) + INFO_CONTINUOUS * F.mse_loss(q[:, k : k + n].float(), z[:, :n])

    def d_loss(self, out: Tensor, batch: DBatch, z: Tensor, x: Tensor) -> Tensor:
        n = len(batch.x_real)
        return super().d_loss(out, batch, z, x) + self.info(out[n:, 1:], batch.y_gen, z)

    def g_loss(self, out: Tensor, y: Tensor, z: Tensor) -> Tensor:
        return super().g_loss(out, y, z) + self.info(out[:, 1:], y, z)


class S3Gan(Objective):
    """D sees reals, fakes and the reals rotated; G's fakes and the fakes rotated. Columns of D's
    outputs: the projection logit, 4 rotation logits, K class logits. Labels < 0: unlabelled."""

    def d_input(self, batch: DBatch, x_fake: Tensor) -> tuple[Tensor, Tensor]:
        x, y = super().d_input(batch, x_fake)
        return torch.cat([x, rotate(batch.x_real)[0]]), torch.cat([y, batch.y_real])

    def d_loss(self, out: Tensor, batch: DBatch, z: Tensor, x: Tensor) -> Tensor:
        n, m = len(batch.x_real), len(batch.y_gen)
        labelled = batch.y_real >= 0
        cls = F.cross_entropy(out[:n][labelled, 5:].float(), batch.y_real[labelled], reduction="sum")
        rotation = _ce(out[n + m :, 1:5], rotations(n, out.device))
        return super().d_loss(out, batch, z, x) + ROTATION_D * rotation + cls / labelled.sum().clamp(min=1)

    def g_input(self, x_fake: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return torch.cat([x_fake, rotate(x_fake)[0]]), torch.cat([y, y])

    def g_loss(self, out: Tensor, y: Tensor, z: Tensor) -> Tensor:
        m = len(y)
        return self.loss.g(adversarial(out[:m])) + ROTATION_G * _ce(out[m:, 1:5], rotations(m, out.device))


@dataclass(frozen=True)
class Kind:
    objective: type[Objective]
    nets: Literal["dcgan"] | None  # None: gan.arch's nets (projection D)
    g_label: str  # how the label enters G: "class" (embedding, conditional BN), "onehot", "none"
    d_label: str  # and D: "class" (projection), "onehot", "none"
    labels: Literal["supervised", "semi", "none"]  # trains on labelled images / all, labels where kept / all, no labels
    aux: Callable[[int, int], int]  # D's auxiliary outputs for (classes, continuous codes)

    @property
    def conditional(self) -> bool:
        """G(z, y) is meant to draw class y (the kinds cGAN-KD can sample)."""
        return self.labels != "none"


KINDS: dict[str, Kind] = {
    "projection": Kind(Objective, None, "class", "class", "supervised", lambda k, c: 0),
    "s3gan": Kind(S3Gan, None, "class", "class", "semi", lambda k, c: 4 + k),
    "dcgan": Kind(Objective, "dcgan", "none", "none", "none", lambda k, c: 0),
    "cdcgan": Kind(Objective, "dcgan", "onehot", "onehot", "supervised", lambda k, c: 0),
    "acgan": Kind(ACGan, "dcgan", "onehot", "none", "supervised", lambda k, c: k),
    "2ngan": Kind(TwoNGan, "dcgan", "onehot", "none", "supervised", lambda k, c: 2 * k),
    "infogan": Kind(InfoGan, "dcgan", "onehot", "none", "none", lambda k, c: k + c),
}


def get_kind(name: str) -> Kind:
    if name not in KINDS:
        raise ParamsError(f"unknown GAN kind {name!r} (known: {', '.join(sorted(KINDS))})")
    return KINDS[name]


def objective(p: Any, num_classes: int = 0) -> Objective:
    """The objective of GAN params p (kind, loss, info_continuous) for K = num_classes."""
    return get_kind(p.kind).objective(get_loss(p.loss), num_classes, p.info_continuous)


def build_args(p: Any, num_classes: int) -> dict[str, Any]:
    """What build_gan needs besides the data shape, widths and z_dim for a class-label kind."""
    kind = get_kind(p.kind)
    if kind.nets is None:
        args: dict[str, Any] = {"arch": p.arch, "label_input": "class", "num_classes": num_classes}
        return args | ({"semi": True} if kind.labels == "semi" else {})
    return {
        "arch": "dcgan",
        "label_input": "onehot" if kind.g_label == "onehot" else "none",
        "d_label_input": kind.d_label,
        "num_classes": num_classes,
        "d_aux": kind.aux(num_classes, p.info_continuous),
    }


def label_mask(y: Tensor, fraction: float, seed: int) -> Tensor:
    """Which training images keep their label: fraction x n_c of each class's n_c, rounded half up
    (at least one), drawn with a generator seeded by `seed`."""
    gen = torch.Generator().manual_seed(seed)
    keep = torch.zeros(len(y), dtype=torch.bool)
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).squeeze(1)
        k = max(1, int(fraction * len(idx) + 0.5))
        keep[idx[torch.randperm(len(idx), generator=gen)[:k]]] = True
    return keep
