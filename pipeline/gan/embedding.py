"""ILI's second step: train y2h so that the frozen head of the regression net recovers the label.

The regression net x -> h -> y is trained first like any regressor (MSE on normalised labels);
then y2h : [0, 1] -> R^128 is fitted with head(y2h(y')) ~ y', y' = clamp(y + gamma, 0, 1),
gamma ~ N(0, gamma_std^2), y drawn among the training labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.utils import Progress, minimise


def train_y2h(
    y2h: nn.Module,
    head: nn.Module,
    labels: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    gamma_std: float = 0.2,
    log_every: int = 50,
    progress: Progress | None = None,
) -> list[dict[str, float]]:
    """Adam on y2h's parameters only (the head is frozen); returns the loss history."""
    for p in head.parameters():
        p.requires_grad_(False)
    head.eval()
    y2h.train()
    opt = torch.optim.Adam(y2h.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)

    def batch_loss() -> torch.Tensor:
        y = labels[torch.randint(len(labels), (batch_size,))]
        y = (y + gamma_std * torch.randn(batch_size)).clamp(0.0, 1.0)
        return F.mse_loss(head(y2h(y)).view(-1), y)

    history = minimise(opt, batch_loss, steps, sched=sched, log_every=log_every, progress=progress)
    y2h.eval()
    return history
