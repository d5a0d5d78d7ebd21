"""Losses for teachers and students (classification and regression), chosen by name from `LOSSES`.

Regression nets output (N, 1) or (N,) predictions of the normalised label."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def ce_loss(logits: Tensor, y: Tensor, teacher_logits: Tensor | None = None, **_: float) -> Tensor:
    """Cross-entropy with the hard labels y."""
    return F.cross_entropy(logits, y)


def blkd_loss(
    logits: Tensor, y: Tensor, teacher_logits: Tensor | None = None, *, temperature: float, alpha: float
) -> Tensor:
    """Hinton's KD: alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)."""
    if teacher_logits is None:
        raise ValueError("blkd needs teacher logits")
    T = temperature
    kl = F.kl_div(
        F.log_softmax(logits / T, 1), F.log_softmax(teacher_logits / T, 1), log_target=True, reduction="batchmean"
    )
    return alpha * T * T * kl + (1 - alpha) * F.cross_entropy(logits, y)


def mse_loss(pred: Tensor, y: Tensor, teacher_logits: Tensor | None = None, **_: float) -> Tensor:
    """mean((pred - y)^2) for a scalar regression target."""
    return F.mse_loss(pred.view(-1), y.view(-1))


def l1_loss(pred: Tensor, y: Tensor, teacher_logits: Tensor | None = None, **_: float) -> Tensor:
    """mean(|pred - y|) for a scalar regression target."""
    return F.l1_loss(pred.view(-1), y.view(-1))


LOSSES: dict[str, Callable[..., Tensor]] = {"ce": ce_loss, "blkd": blkd_loss, "mse": mse_loss, "l1": l1_loss}
