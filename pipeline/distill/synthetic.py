"""Building the synthetic set of cGAN-KD: filter generated fakes with the teacher, relabel them.

The functions take fakes already drawn (plainly from G, or through density-ratio subsampling):
a burn-in set that fixes the filter's thresholds, and the candidates to filter.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from pipeline.utils import predict

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
    kept = torch.bincount(y_cond, minlength=num_classes).float() / torch.bincount(fakes[1], minlength=num_classes).clamp(min=1)
    changed = float((y != y_cond).float().mean()) if len(y) else 0.0
    return SyntheticSet(x, y, y_cond, thresholds, kept, changed)


@dataclass(frozen=True)
class RegressionSyntheticSet:
    x: Tensor  # kept fakes
    y_cond: Tensor  # normalised labels the generator was conditioned on
    y_teacher: Tensor  # the teacher's prediction for each kept fake (label adjustment)
    threshold: float  # |teacher(x) - y| threshold from the burn-in set
    kept_fraction: float


def build_synthetic_regression(teacher: nn.Module, burnin: tuple[Tensor, Tensor], fakes: tuple[Tensor, Tensor], *, rho: float) -> RegressionSyntheticSet:
    """Drop the fakes (x, y_cond) whose |teacher(x) - y| exceeds the rho-quantile of the burn-in
    fakes' errors; keep the teacher's predictions for label adjustment (labels normalised)."""
    x_burn, y_burn = burnin
    threshold = float(torch.quantile((predict(teacher, x_burn).view(-1) - y_burn).abs(), rho))
    x, y_cond = fakes
    pred = predict(teacher, x).view(-1)
    keep = (pred - y_cond).abs() <= threshold
    return RegressionSyntheticSet(x[keep], y_cond[keep], pred[keep], threshold, float(keep.float().mean()) if len(keep) else 0.0)
