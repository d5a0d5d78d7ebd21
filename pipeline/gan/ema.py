"""Exponential moving average of the generator's weights (used for sampling)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pipeline.utils import device_of


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters; buffers (BN statistics) are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p, 1 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


@torch.no_grad()
def standing_stats(
    G: nn.Module, z_dim: int, labels: Callable[[int], torch.Tensor], n_batches: int = 20, batch_size: int = 128
) -> None:
    """Recompute G's batch-norm statistics as a plain average over generated batches.

    The EMA generator's weights are an average over training, so the statistics copied from the
    live G do not fit them; BigGAN's 'standing statistics' fix that before sampling. `labels(n)`
    draws n labels to generate at."""
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was_training = G.training
    G.train()
    device = device_of(G)
    for _ in range(n_batches):
        G(torch.randn(batch_size, z_dim).to(device), labels(batch_size).to(device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    G.train(was_training)
