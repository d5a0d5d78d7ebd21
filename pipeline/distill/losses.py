"""Task losses of teachers and students (classification and regression), chosen by name from `LOSSES`
(the distillation methods, BLKD among them, are in distill/methods.py).

Regression nets output (N, 1) or (N,) predictions of the normalised label."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def ce_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy with the hard labels y."""
    return F.cross_entropy(logits, y)


def mse_loss(pred: Tensor, y: Tensor) -> Tensor:
    """mean((pred - y)^2) for a scalar regression target."""
    return F.mse_loss(pred.view(-1), y.view(-1))


def l1_loss(pred: Tensor, y: Tensor) -> Tensor:
    """mean(|pred - y|) for a scalar regression target."""
    return F.l1_loss(pred.view(-1), y.view(-1))


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"ce": ce_loss, "mse": mse_loss, "l1": l1_loss}
