"""Classification losses for teachers and students, chosen by name from `LOSSES`."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def ce_loss(logits: Tensor, y: Tensor, teacher_logits: Tensor | None = None, **_: float) -> Tensor:
    """Cross-entropy with the hard labels y."""
    return F.cross_entropy(logits, y)


def blkd_loss(logits: Tensor, y: Tensor, teacher_logits: Tensor | None = None, *, temperature: float, alpha: float) -> Tensor:
    """Hinton's KD: alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)."""
    if teacher_logits is None:
        raise ValueError("blkd needs teacher logits")
    T = temperature
    kl = F.kl_div(F.log_softmax(logits / T, 1), F.log_softmax(teacher_logits / T, 1), log_target=True, reduction="batchmean")
    return alpha * T * T * kl + (1 - alpha) * F.cross_entropy(logits, y)


LOSSES: dict[str, Callable[..., Tensor]] = {"ce": ce_loss, "blkd": blkd_loss}
