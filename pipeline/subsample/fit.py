"""Fitting DRE-F-SP and cDRE-F-cSP for one generator: the one code path of the dre stage and of
`cgankd subsample` (a user's own generator checkpoint)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from pipeline.nets.backbone import Backbone
from pipeline.subsample.ratio import RatioNet, dre_loss, fake_feature_pool, fake_features, ratio, train_ratio
from pipeline.utils import Progress, features_of, watched

Tensor = torch.Tensor


def auc(pos: Tensor, neg: Tensor) -> float:
    """P(pos > neg) + P(pos = neg) / 2 over all pairs (at most 2000 of each)."""
    pos, neg = pos[:2000, None], neg[None, :2000]
    return float(((pos > neg).float() + 0.5 * (pos == neg).float()).mean())


def largest_gap(labels: Tensor) -> float:
    u = torch.unique(labels)
    return float((u[1:] - u[:-1]).max()) if len(u) > 1 else 1.0


def label_window(y_train: Tensor, zeta_factor: float | None, continuous: bool) -> float | None:
    """zeta of rejection sampling's label window: zeta_factor x the largest gap between the
    (normalised) training labels, for continuous labels; None (no window) otherwise."""
    return zeta_factor * largest_gap(y_train) if continuous and zeta_factor is not None else None


@dataclass(frozen=True)
class FittedRatio:
    arch: dict
    net: RatioNet
    history: list[dict[str, float]]
    stats: dict[str, float]

    def checkpoint(self) -> dict:
        return {"arch": self.arch, "model": self.net.state_dict()}


@dataclass(frozen=True)
class RatioData:
    """What the ratio nets train and are checked on: features of the real training samples (and
    their labels), the fakes' features (`fakes`: a fixed pool of fake features at each real's
    label, or a function drawing fresh ones at given labels), held-out real features and one
    fresh fake's features per held-out real, at its label."""

    h_real: Tensor
    y_real: Tensor
    fakes: Tensor | Callable[[Tensor], Tensor]
    h_held: Tensor
    y_held: Tensor
    h_held_fake: Tensor


def fake_draw(
    features: Callable[[Tensor], Tensor],
    head: Callable[[Tensor], Tensor],
    generate: Callable[[Tensor], Tensor],
    p,
    zeta: float | None = None,
) -> Callable[[Tensor], Tensor]:
    """draw(y) -> features of one new fake at each label y, with the DreParams fields of `p`
    (fake_features; with `zeta`, in the label window read by `head`, at most p.max_redraws redraws)."""
    window = None if zeta is None else (head, zeta)
    return partial(
        fake_features, features, generate, batch_size=p.batch_size_rs, window=window, max_redraws=p.max_redraws
    )


def ratio_data(
    phi: Backbone,
    generate: Callable[[Tensor], Tensor],
    train: tuple[Tensor, Tensor],
    held_out: tuple[Tensor, Tensor],
    p,
    zeta: float | None = None,
) -> RatioData:
    """The DreParams fields of `p` choose fresh fakes as training goes or a pool of fakes_per_real
    per real; with `zeta` (continuous labels) the training fakes are drawn in the label window as
    rejection sampling keeps them (fake_draw)."""
    (x_train, y_train), (x_held, y_held) = train, held_out
    draw = fake_draw(phi.features, phi.head, generate, p, zeta)
    fakes: Tensor | Callable[[Tensor], Tensor]
    fakes = draw if p.fresh_fakes else fake_feature_pool(draw, y_train, p.fakes_per_real)
    h_held_fake = draw(y_held)
    return RatioData(features_of(phi, x_train), y_train, fakes, features_of(phi, x_held), y_held, h_held_fake)


def fit_ratio(
    data: RatioData,
    method: str,
    p,
    *,
    num_classes: int = 0,
    y2h: dict[str, Tensor] | None = None,
    progress: Progress | None = None,
    check: Callable[[int, RatioNet], None] | None = None,
) -> FittedRatio:
    """Train psi for `method` ("dre": psi(h), one per class for class labels; "cdre": psi(h | y))
    with the DreParams fields of `p`.
    Labels are class indices (num_classes > 0: cDRE embeds them with nn.Embedding) or normalised
    continuous labels (cDRE embeds them with CcGAN's frozen y2h). `check(step, net)` runs at each
    logged step (a study evaluates the net there, and may stop the training by raising)."""
    if method == "dre":  # DRE-F-SP: one ratio net per class for class labels, one psi(h) for continuous ones
        label = "per_class" if num_classes else "none"
    else:
        label = "class" if num_classes else "y2h"
    arch = {
        "in_dim": data.h_real.shape[1],
        "width": p.width,
        "depth": p.depth,
        "dropout": p.dropout,
        "label": label,
        "num_classes": num_classes,
        "embed_dim": p.embed_dim,
        "norm": p.norm,
    }
    net = RatioNet(**arch)
    if label == "y2h":
        if y2h is None or net.embed is None:
            raise ValueError("cDRE with continuous labels needs CcGAN's y2h")
        net.embed.load_state_dict(y2h)

    history = train_ratio(
        net,
        data.h_real,
        data.y_real,
        data.fakes,
        penalty=p.penalty,
        steps=p.steps,
        batch_size=p.batch_size,
        lr=p.lr,
        weight_decay=p.weight_decay,
        progress=watched(progress, check, net),
        block=p.fresh_block,
        reuse=p.fresh_reuse,
    )
    psi_real, psi_fake = ratio(net, data.h_held, data.y_held), ratio(net, data.h_held_fake, data.y_held)
    stats = {
        "held_out_loss": dre_loss(net, data.h_held, data.y_held, data.h_held_fake, data.y_held, p.penalty),
        "psi_real_mean": float(psi_real.mean()),
        "psi_fake_mean": float(psi_fake.mean()),
        "psi_fake_zero_fraction": float((psi_fake == 0).float().mean()),
        "auc_real_vs_fake": auc(psi_real, psi_fake),
    }
    return FittedRatio(arch, net, history, stats)
