"""Building the synthetic set of cGAN-KD: filter generated fakes with the teacher, relabel them.

The functions take fakes already drawn (plainly from G, or through density-ratio subsampling):
a burn-in set that fixes the filter's thresholds, and the candidates to filter.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.utils import Progress, predict, seed_everything

Tensor = torch.Tensor


def teacher_ce(teacher: nn.Module, x: Tensor, y: Tensor, batch_size: int = 512) -> Tensor:
    """Per-sample cross-entropy of the teacher at labels y."""
    return F.cross_entropy(predict(teacher, x, batch_size), y, reduction="none")


def class_thresholds(ce: Tensor, y: Tensor, num_classes: int, rho: float) -> Tensor:
    """The rho-quantile of ce within each class (inf for a class with no sample: keep all)."""
    q = torch.full((num_classes,), float("inf"))
    for k in range(num_classes):
        values = ce[y == k]
        if len(values):
            q[k] = torch.quantile(values, rho)
    return q


def keep_mask(ce: Tensor, y: Tensor, thresholds: Tensor) -> Tensor:
    """Keep a fake iff its teacher CE does not exceed its class threshold."""
    return ce <= thresholds[y]


@dataclass(frozen=True)
class SyntheticSet:
    x: Tensor  # kept fakes
    y: Tensor  # training labels (teacher's class if relabelled, else the condition)
    y_cond: Tensor  # labels the generator was conditioned on
    thresholds: Tensor  # per-class CE threshold from the burn-in set
    kept_fraction: Tensor  # per class
    relabelled_fraction: float  # share of kept fakes whose label changed


def build_synthetic(
    teacher: nn.Module,
    burnin: tuple[Tensor, Tensor],
    fakes: tuple[Tensor, Tensor],
    *,
    num_classes: int,
    rho: float,
    relabel: bool,
) -> SyntheticSet:
    """Drop the fakes (x, y_cond) above the per-class rho-quantile of the burn-in fakes' teacher CE,
    and optionally relabel the kept ones with the teacher's class."""
    thresholds = class_thresholds(teacher_ce(teacher, *burnin), burnin[1], num_classes, rho)
    x, y_cond = fakes
    logits = predict(teacher, x)
    keep = keep_mask(F.cross_entropy(logits, y_cond, reduction="none"), y_cond, thresholds)
    y = logits.argmax(1)[keep] if relabel else y_cond[keep]
    x, y_cond = x[keep], y_cond[keep]
    kept = torch.bincount(y_cond, minlength=num_classes).float() / torch.bincount(
        fakes[1], minlength=num_classes
    ).clamp(min=1)
    changed = float((y != y_cond).float().mean()) if len(y) else 0.0
    return SyntheticSet(x, y, y_cond, thresholds, kept, changed)


@dataclass(frozen=True)
class RegressionSyntheticSet:
    x: Tensor  # kept fakes
    y_cond: Tensor  # normalised labels the generator was conditioned on
    y_teacher: Tensor  # the teacher's prediction for each kept fake (label adjustment)
    threshold: float  # |teacher(x) - y| threshold from the burn-in set
    kept_fraction: float


def build_synthetic_regression(
    teacher: nn.Module, burnin: tuple[Tensor, Tensor], fakes: tuple[Tensor, Tensor], *, rho: float
) -> RegressionSyntheticSet:
    """Drop the fakes (x, y_cond) whose |teacher(x) - y| exceeds the rho-quantile of the burn-in
    fakes' errors; keep the teacher's predictions for label adjustment (labels normalised). The
    teacher's predictions are clipped to the label range [0, 1] first, in the filter as in the
    adjusted labels, as the reference does."""
    x_burn, y_burn = burnin
    threshold = float(torch.quantile((predict(teacher, x_burn).view(-1).clamp(0, 1) - y_burn).abs(), rho))
    x, y_cond = fakes
    pred = predict(teacher, x).view(-1).clamp(0, 1)
    keep = (pred - y_cond).abs() <= threshold
    return RegressionSyntheticSet(
        x[keep], y_cond[keep], pred[keep], threshold, float(keep.float().mean()) if len(keep) else 0.0
    )


class Drawn(NamedTuple):
    """What synthetic_set draws: the processed set, the fakes before the teacher filter (x, y), the
    rejection-sampling statistics (None without subsampling) and the labels drawn at."""

    syn: SyntheticSet | RegressionSyntheticSet
    x: Tensor
    y: Tensor
    stats: object | None
    labels: Tensor


Bar = Callable[[str, int], AbstractContextManager[Progress | None]]


def synthetic_set(
    exp, ds, teacher: nn.Module, G: nn.Module, sub, seed: int, bar: Bar = lambda name, total: nullcontext()
) -> Drawn:
    """Draw the burn-in set and the fakes (through the Subsampler `sub` when given), then filter
    (and relabel) them with the teacher, by `exp.synthesize`. Class labels: every class; continuous
    labels: uniform over the training range (normalised). `bar(name, total)` gives each draw a
    progress callback. The synthesize stage and the n-fake study share it."""
    from pipeline.subsample.subsampler import draw

    p = exp.synthesize

    def drawn(what: str, labels: Tensor, n: int):
        with bar(f"{what} ({p.subsampling})", len(labels) * n) as progress:
            return draw(
                G,
                exp.gan.z_dim,
                labels,
                n,
                sub,
                burnin=exp.dre.burnin,
                batch_size=exp.dre.batch_size_rs,
                progress=progress,
            )

    seed_everything(seed)
    if exp.task == "classification":
        labels = torch.arange(ds.num_classes)
        burn = drawn("burn-in", labels, p.n_burnin_per_class)
        x, y, stats = drawn("fakes", labels, p.n_fake_per_class)
        return Drawn(
            build_synthetic(teacher, burn[:2], (x, y), num_classes=ds.num_classes, rho=p.rho, relabel=p.relabel),
            x,
            y,
            stats,
            labels,
        )
    u = ds.normalise(ds.y_train)
    lo, hi = float(u.min()), float(u.max())
    burn_labels = lo + (hi - lo) * torch.rand(max(1, p.n_burnin // p.n_per_label))
    labels = lo + (hi - lo) * torch.rand(max(1, p.n_fake // p.n_per_label))
    burn = drawn("burn-in", burn_labels, p.n_per_label)
    x, y, stats = drawn("fakes", labels, p.n_per_label)
    return Drawn(build_synthetic_regression(teacher, burn[:2], (x, y), rho=p.rho), x, y, stats, labels)


def oracle_fakes(exp, ds, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Perfect fakes for the built-in chairs: n fresh renders of the experiment's chair models at
    yaw uniform over the training label range, with their true (normalised) labels."""
    from pipeline.data.chairs import render_uniform

    x, y = render_uniform(
        n, float(ds.y_train.min()), float(ds.y_train.max()), exp.data.n_models, exp.data.image_size, seed, seed + 1
    )
    return x, ds.normalise(y)
