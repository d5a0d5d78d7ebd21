"""Training the sparse autoencoder that gives continuous-label DRE its feature space."""

from __future__ import annotations

import torch

import torch.nn.functional as F

from pipeline.subsample.autoencoder import SparseAutoencoder
from pipeline.utils import Progress

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
    history, acc, n_acc = [], 0.0, 0
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(x), (batch_size,))
        xb = x[idx]
        x_hat, h, y_hat = model.reconstruct(xb)
        loss = sparse_ae_loss(xb, x_hat, h, y[idx].float(), y_hat, sparsity)
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
    model.eval()
    return history


