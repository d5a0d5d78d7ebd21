"""Training the sparse autoencoder that gives continuous-label DRE its feature space."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.subsample.autoencoder import SparseAutoencoder
from pipeline.utils import Progress, minimise

Tensor = torch.Tensor


def sparse_ae_loss(x: Tensor, x_hat: Tensor, h: Tensor, y: Tensor, y_hat: Tensor, sparsity: float = 1e-3) -> Tensor:
    """Reconstruction MSE + sparsity * mean(h) + label MSE (ALGORITHMS.md section 2)."""
    return F.mse_loss(x_hat, x) + sparsity * h.mean() + F.mse_loss(y_hat, y)


def train_autoencoder(
    model: SparseAutoencoder,
    x: Tensor,
    y: Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    sparsity: float = 1e-3,
    log_every: int = 50,
    progress: Progress | None = None,
) -> list[dict[str, float]]:
    """Adam with a cosine schedule on mini-batches of (x, normalised y); returns the loss history."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    batch_size = min(batch_size, len(x))

    def batch_loss() -> Tensor:
        idx = torch.randint(0, len(x), (batch_size,))
        xb = x[idx]
        x_hat, h, y_hat = model.reconstruct(xb)
        return sparse_ae_loss(xb, x_hat, h, y[idx].float(), y_hat, sparsity)

    history = minimise(opt, batch_loss, steps, sched=sched, log_every=log_every, progress=progress)
    model.eval()
    return history
