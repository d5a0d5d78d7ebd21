"""Adversarial losses, one function per loss, chosen by name from `LOSSES`.

Every D loss takes the discriminator's logits on real and fake images and optional per-sample
weights (CcGAN's soft vicinity multiplies each pair's loss by its weight); weighted losses are
mean(w * l), as in the vicinal losses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from pipeline.errors import ParamsError

Tensor = torch.Tensor


def _mean(values: Tensor, weights: Tensor | None) -> Tensor:
    return values.mean() if weights is None else (weights * values).mean()


def d_hinge(real: Tensor, fake: Tensor, w_real: Tensor | None = None, w_fake: Tensor | None = None) -> Tensor:
    """mean(relu(1 - D(x_r))) + mean(relu(1 + D(x_g)))"""
    return _mean(F.relu(1 - real), w_real) + _mean(F.relu(1 + fake), w_fake)


def g_hinge(fake: Tensor) -> Tensor:
    """-mean(D(G(z)))"""
    return -fake.mean()


def d_bce(real: Tensor, fake: Tensor, w_real: Tensor | None = None, w_fake: Tensor | None = None) -> Tensor:
    """-mean(log sigmoid(D(x_r))) - mean(log(1 - sigmoid(D(x_g)))), from logits."""
    return _mean(F.softplus(-real), w_real) + _mean(F.softplus(fake), w_fake)


def g_bce(fake: Tensor) -> Tensor:
    """Non-saturating: -mean(log sigmoid(D(G(z))))."""
    return F.softplus(-fake).mean()


def d_ls(real: Tensor, fake: Tensor, w_real: Tensor | None = None, w_fake: Tensor | None = None) -> Tensor:
    """Least squares (LSGAN, CycleGAN's choice): mean((D(x_r) - 1)^2) + mean(D(x_g)^2)."""
    return _mean((real - 1).square(), w_real) + _mean(fake.square(), w_fake)


def g_ls(fake: Tensor) -> Tensor:
    """mean((D(G(z)) - 1)^2)"""
    return (fake - 1).square().mean()


class GanLoss(NamedTuple):
    d: Callable[..., Tensor]
    g: Callable[[Tensor], Tensor]


LOSSES: dict[str, GanLoss] = {
    "hinge": GanLoss(d_hinge, g_hinge),
    "bce": GanLoss(d_bce, g_bce),
    "ls": GanLoss(d_ls, g_ls),
}


def get_loss(name: str) -> GanLoss:
    if name not in LOSSES:
        raise ParamsError(f"unknown GAN loss {name!r} (known: {', '.join(sorted(LOSSES))})")
    return LOSSES[name]
