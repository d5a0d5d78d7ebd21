"""Class-conditional GAN training: separate D and G steps, EMA generator, resumable state.

The loop is a pure function of its inputs: it never reads params, prints or logs; it reports
through `progress` and hands its state to `on_checkpoint` every `checkpoint_every` steps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from pipeline.gan.ema import ema_update, standing_stats
from pipeline.gan.losses import GanLoss
from pipeline.utils import Progress, batches

Tensor = torch.Tensor


@dataclass
class GanState:
    """Everything needed to resume: nets, optimisers, step, loss history."""

    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def create(cls, G: nn.Module, D: nn.Module, lr_g: float, lr_d: float, betas: tuple[float, float]) -> GanState:
        G_ema = copy.deepcopy(G).eval()
        for p in G_ema.parameters():
            p.requires_grad_(False)
        return cls(
            G=G,
            D=D,
            G_ema=G_ema,
            opt_g=torch.optim.Adam(G.parameters(), lr=lr_g, betas=betas),
            opt_d=torch.optim.Adam(D.parameters(), lr=lr_d, betas=betas),
        )

    def state_dict(self) -> dict:
        return {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "step": self.step,
            "history": self.history,
            "rng": torch.get_rng_state(),
        }

    def load_state_dict(self, sd: dict) -> None:
        self.G.load_state_dict(sd["G"])
        self.D.load_state_dict(sd["D"])
        self.G_ema.load_state_dict(sd["G_ema"])
        self.opt_g.load_state_dict(sd["opt_g"])
        self.opt_d.load_state_dict(sd["opt_d"])
        self.step = int(sd["step"])
        self.history = list(sd["history"])
        torch.set_rng_state(sd["rng"])


Augment = Callable[[Tensor], Tensor]


def _identity(x: Tensor) -> Tensor:
    return x


def d_step(G: nn.Module, D: nn.Module, opt_d: torch.optim.Optimizer, loss: GanLoss, x_real: Tensor, y: Tensor, z_dim: int, augment: Augment = _identity) -> float:
    """One discriminator update; fakes are generated at the real batch's labels. `augment`
    (differentiable, DiffAugment-style) is applied to real and fake images alike before D."""
    with torch.no_grad():
        x_fake = G(torch.randn(len(y), z_dim), y)
    d_loss = loss.d(D(augment(x_real), y), D(augment(x_fake), y))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    return d_loss.item()


def g_step(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer, loss: GanLoss, batch_size: int, num_classes: int, z_dim: int, augment: Augment = _identity) -> float:
    """One generator update at uniformly drawn class labels."""
    y = torch.randint(0, num_classes, (batch_size,))
    g_loss = loss.g(D(augment(G(torch.randn(batch_size, z_dim), y)), y))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return g_loss.item()


def train_gan(
    state: GanState,
    x: Tensor,
    y: Tensor,
    *,
    loss: GanLoss,
    num_classes: int,
    z_dim: int,
    steps: int,
    n_dis: int,
    batch_size: int,
    ema_decay: float,
    ema_start: int,
    augment: Augment = _identity,
    log_every: int = 50,
    checkpoint_every: int = 0,
    on_checkpoint: Callable[[GanState], None] | None = None,
    progress: Progress | None = None,
) -> GanState:
    """Train from state.step up to `steps` generator steps on real images (x, y). At the end,
    G_ema's batch-norm statistics are recomputed for its averaged weights (standing statistics)."""
    state.G.train()
    state.D.train()
    d_acc, g_acc, n_acc = 0.0, 0.0, 0
    while state.step < steps:
        for _ in range(n_dis):
            idx = torch.randint(0, len(x), (batch_size,))
            d_acc += d_step(state.G, state.D, state.opt_d, loss, x[idx], y[idx], z_dim, augment) / n_dis
        g_acc += g_step(state.G, state.D, state.opt_g, loss, batch_size, num_classes, z_dim, augment)
        n_acc += 1
        state.step += 1
        ema_update(state.G_ema, state.G, 0.0 if state.step <= ema_start else ema_decay)
        if state.step % log_every == 0 or state.step == steps:
            record = {"step": float(state.step), "d_loss": d_acc / n_acc, "g_loss": g_acc / n_acc}
            state.history.append(record)
            d_acc, g_acc, n_acc = 0.0, 0.0, 0
            if progress:
                progress(state.step, record)
        if state.step == steps:
            standing_stats(state.G_ema, z_dim, num_classes)
        if on_checkpoint and (state.step == steps or (checkpoint_every and state.step % checkpoint_every == 0)):
            on_checkpoint(state)
    return state


@torch.no_grad()
def sample(G: nn.Module, y: Tensor, z_dim: int, batch_size: int = 500) -> Tensor:
    """Images from G (in eval mode) at labels y, generated in batches."""
    was_training = G.training
    G.eval()
    out = torch.cat([G(torch.randn(s.stop - s.start, z_dim), y[s]) for s in batches(len(y), batch_size)])
    G.train(was_training)
    return out
