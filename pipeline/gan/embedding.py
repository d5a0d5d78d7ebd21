"""ILI's second step: train y2h so that the frozen head of the regression net recovers the label.

The regression net x -> h -> y is trained first like any regressor (MSE on normalised labels);
then y2h : [0, 1] -> R^128 is fitted with head(y2h(y')) ~ y', y' = clamp(y + gamma, 0, 1),
gamma ~ N(0, gamma_std^2), y drawn among the training labels.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from pipeline.utils import Progress


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
    history, acc, n_acc = [], 0.0, 0
    for step in range(1, steps + 1):
        y = labels[torch.randint(len(labels), (batch_size,))]
        y = (y + gamma_std * torch.randn(batch_size)).clamp(0.0, 1.0)
        loss = F.mse_loss(head(y2h(y)).view(-1), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        acc, n_acc = acc + loss.item(), n_acc + 1
        if step % log_every == 0 or step == steps:
            history.append({"step": float(step), "loss": acc / n_acc})
            acc, n_acc = 0.0, 0
            if progress:
                progress(step, history[-1])
    y2h.eval()
    return history
