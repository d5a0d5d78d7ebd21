"""Building the synthetic set of cGAN-KD: generate per class, filter with the teacher, relabel."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from pipeline.gan.train import sample
from pipeline.utils import Progress, predict

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
    G: nn.Module,
    teacher: nn.Module,
    *,
    num_classes: int,
    z_dim: int,
    n_per_class: int,
    n_burnin_per_class: int,
    rho: float,
    relabel: bool,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> SyntheticSet:
    """Generate n_per_class fakes per class, drop those above the per-class rho-quantile of a
    burn-in set's teacher CE, and optionally relabel the kept ones with the teacher's class."""
    classes = torch.arange(num_classes)
    y_burn = classes.repeat_interleave(n_burnin_per_class)
    thresholds = class_thresholds(teacher_ce(teacher, sample(G, y_burn, z_dim, batch_size), y_burn), y_burn, num_classes, rho)

    xs, ys, conds = [], [], []
    y_all = classes.repeat_interleave(n_per_class)
    done = 0
    for start in range(0, len(y_all), batch_size):
        y_c = y_all[start : start + batch_size]
        x = sample(G, y_c, z_dim, batch_size)
        logits = predict(teacher, x, batch_size)
        keep = keep_mask(F.cross_entropy(logits, y_c, reduction="none"), y_c, thresholds)
        xs.append(x[keep])
        conds.append(y_c[keep])
        ys.append(logits.argmax(1)[keep] if relabel else y_c[keep])
        done += len(y_c)
        if progress:
            progress(done, {"kept": float(sum(len(c) for c in conds)) / done})
    x, y, y_cond = torch.cat(xs), torch.cat(ys), torch.cat(conds)
    kept = torch.bincount(y_cond, minlength=num_classes).float() / n_per_class
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
    G: nn.Module,
    teacher: nn.Module,
    *,
    z_dim: int,
    n_fake: int,
    n_burnin: int,
    rho: float,
    label_range: tuple[float, float] = (0.0, 1.0),
    batch_size: int = 500,
    progress: Progress | None = None,
) -> RegressionSyntheticSet:
    """Generate n_fake fakes at labels drawn uniformly over `label_range` (normalised), drop those
    whose |teacher(x) - y| exceeds the rho-quantile of a burn-in set's errors, and keep the
    teacher's predictions for label adjustment."""
    lo, hi = label_range

    def draw(n: int) -> Tensor:
        return lo + (hi - lo) * torch.rand(n)

    y_burn = draw(n_burnin)
    burn_err = (predict(teacher, sample(G, y_burn, z_dim, batch_size), batch_size).view(-1) - y_burn).abs()
    threshold = float(torch.quantile(burn_err, rho))

    xs, conds, preds = [], [], []
    y_all = draw(n_fake)
    for start in range(0, n_fake, batch_size):
        y_c = y_all[start : start + batch_size]
        x = sample(G, y_c, z_dim, batch_size)
        pred = predict(teacher, x, batch_size).view(-1)
        keep = (pred - y_c).abs() <= threshold
        xs.append(x[keep])
        conds.append(y_c[keep])
        preds.append(pred[keep])
        if progress:
            progress(start + len(y_c), {"kept": float(sum(len(c) for c in conds)) / (start + len(y_c))})
    x, y_cond, y_teacher = torch.cat(xs), torch.cat(conds), torch.cat(preds)
    return RegressionSyntheticSet(x, y_cond, y_teacher, threshold, len(y_cond) / n_fake)
