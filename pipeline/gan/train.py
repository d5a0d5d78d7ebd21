"""Conditional GAN training (class labels or CcGAN vicinities): separate D and G steps, EMA generator, resumable state.

The loop is a pure function of its inputs: it never reads params, prints or logs; it reports
through `progress` and hands its state to `on_checkpoint` every `checkpoint_every` steps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import torch
from torch import nn

from pipeline.errors import ParamsError
from pipeline.gan.compiled import CompiledIteration
from pipeline.gan.ema import ema_update, standing_stats
from pipeline.gan.kinds import Objective
from pipeline.gan.vicinal import VicinalSampler
from pipeline.runtime import LOCAL, Runtime, channels_last, current
from pipeline.utils import Progress, batches, device_of

Tensor = torch.Tensor


def _adam(model: nn.Module, lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
    """Adam over the trainable parameters, fused into one kernel (several times faster for small nets on CPU)."""
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, betas=betas, fused=True)


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
        # convolution weights channels_last: the CPU's oneDNN convolutions run the demo's GAN steps
        # 1.2-1.4x faster so (bench-gan), as the GPU's do; a no-op for MLPs
        G, D = channels_last(G), channels_last(D)
        G_ema = copy.deepcopy(G).eval()
        for p in G_ema.parameters():
            p.requires_grad_(False)
        return cls(
            G=G,
            D=D,
            G_ema=G_ema,
            opt_g=_adam(G, lr_g, betas),
            opt_d=_adam(D, lr_d, betas),
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


class DBatch(NamedTuple):
    """What one discriminator step sees: reals x_real at labels y_real, fakes G(z, y_gen) judged
    at labels y_fake, optional per-sample loss weights."""

    x_real: Tensor
    y_real: Tensor
    y_gen: Tensor
    y_fake: Tensor
    w_real: Tensor | None = None
    w_fake: Tensor | None = None


class Conditioning(Protocol):
    """How labels are drawn: class labels (cGAN) or vicinities of continuous labels (CcGAN)."""

    def d_batch(self, batch_size: int) -> DBatch: ...

    def g_labels(self, batch_size: int) -> Tensor: ...


class ClassConditioning:
    """Class-conditional GAN: reals drawn uniformly, fakes at the same labels, G steps at uniform
    classes. Labels < 0 mark unlabelled reals (S3GAN); then every fake's label is drawn uniformly."""

    def __init__(self, x: Tensor, y: Tensor, num_classes: int) -> None:
        self.x, self.y, self.num_classes = x, y, num_classes
        self.semi = bool((y < 0).any())

    def d_batch(self, batch_size: int) -> DBatch:
        idx = torch.randint(0, len(self.x), (batch_size,))
        y = self.y[idx]
        y_gen = self.g_labels(batch_size) if self.semi else y
        return DBatch(self.x[idx], y, y_gen, y_gen)

    def g_labels(self, batch_size: int) -> Tensor:
        return torch.randint(0, self.num_classes, (batch_size,))


class CodeConditioning(ClassConditioning):
    """No labels (DCGAN, InfoGAN): reals drawn uniformly; each fake's "label" is a code drawn
    uniformly from num_codes values (InfoGAN's categorical code; DCGAN's G ignores it). D, which
    takes no label, is handed the codes for the reals too."""

    def __init__(self, x: Tensor, num_codes: int) -> None:
        super().__init__(x, torch.zeros(len(x), dtype=torch.long), num_codes)

    def d_batch(self, batch_size: int) -> DBatch:
        idx = torch.randint(0, len(self.x), (batch_size,))
        c = self.g_labels(batch_size)
        return DBatch(self.x[idx], c, c, c)


class VicinalConditioning:
    """CcGAN: reals and fake labels from the vicinity of noisy target labels (HVDL/SVDL)."""

    def __init__(self, x: Tensor, sampler: VicinalSampler) -> None:
        self.x, self.sampler = x, sampler

    def d_batch(self, batch_size: int) -> DBatch:
        b = self.sampler.draw(batch_size)
        return DBatch(self.x[b.real_index], b.targets, b.fake_labels, b.targets, b.w_real, b.w_fake)

    def g_labels(self, batch_size: int) -> Tensor:
        return self.sampler.g_labels(batch_size)


def d_step(
    G: nn.Module,
    D: nn.Module,
    opt_d: torch.optim.Optimizer,
    objective: Objective,
    batch: DBatch,
    z: Tensor,
    augment: Augment = _identity,
    rt: Runtime = LOCAL,
) -> Tensor:
    """One discriminator update on fakes G(z, batch.y_gen); `augment` (differentiable,
    DiffAugment-style) is applied to real and fake images alike before D. The forwards run under
    the runtime's autocast, the loss in fp32. Returns the loss (a detached scalar tensor)."""
    with torch.no_grad(), rt.autocast():
        x_fake = G(z, batch.y_gen)
    x, y = objective.d_input(batch, x_fake.to(batch.x_real.dtype))  # one D pass (D has no batch norm)
    x = augment(x)
    with rt.autocast():
        out = D(x, y)
    d_loss = objective.d_loss(out.float(), batch, z, x)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    return d_loss.detach()


@contextmanager
def no_param_grads(model: nn.Module) -> Iterator[None]:
    """Gradients flow through `model` but are not computed for its parameters (its frozen ones stay frozen)."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def g_step(
    G: nn.Module,
    D: nn.Module,
    opt_g: torch.optim.Optimizer,
    objective: Objective,
    y: Tensor,
    z: Tensor,
    augment: Augment = _identity,
    rt: Runtime = LOCAL,
) -> Tensor:
    """One generator update on G(z, y) (D judges at the same labels). D's weight gradients are
    not computed (the D step discards them anyway): the backward pass through D only carries the
    gradient to its input."""
    with no_param_grads(D):
        with rt.autocast():
            x, y_d = objective.g_input(G(z, y), y)
            out = D(augment(x), y_d)
        g_loss = objective.g_loss(out.float(), y, z)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
    opt_g.step()
    return g_loss.detach()


def _shard_batch(rt: Runtime, batch: DBatch) -> DBatch:
    w_real, w_fake = (None if w is None else rt.shard(w) for w in (batch.w_real, batch.w_fake))
    return DBatch(
        rt.shard(batch.x_real), rt.shard(batch.y_real), rt.shard(batch.y_gen), rt.shard(batch.y_fake), w_real, w_fake
    )


def train_gan(
    state: GanState,
    cond: Conditioning,
    *,
    objective: Objective,
    z_dim: int,
    steps: int,
    n_dis: int,
    batch_size: int,
    ema_decay: float,
    ema_start: int,
    augment: Augment = _identity,
    compiled: bool = False,
    log_every: int = 50,
    checkpoint_every: int = 0,
    on_checkpoint: Callable[[GanState], None] | None = None,
    progress: Progress | None = None,
    rt: Runtime | None = None,
) -> GanState:
    """Train from state.step up to `steps` generator steps, labels drawn by `cond`, with the losses
    of the GAN kind's `objective` (pipeline.gan.kinds). At the end,
    G_ema's batch-norm statistics are recomputed for its averaged weights (standing statistics).
    With `compiled`, each iteration runs as one compiled graph (`compiled.CompiledIteration`): the same
    updates up to floating-point rounding, faster for small nets after a one-off compile.

    Under torchrun (`rt`, see pipeline.runtime), each rank computes its share of every global
    batch, with DDP averaging the gradients; only the caller's rank 0 should write checkpoints."""
    rt = rt or current()  # the process's runtime (pipeline.runtime.start); LOCAL unless started
    if device_of(state.G) != rt.device or device_of(state.D) != rt.device:
        raise ValueError(f"the nets must be on {rt.device} before their optimisers are made (Runtime.prepare)")
    state.G.train()
    state.D.train()
    iteration: Callable[[Conditioning, int, int], tuple[list[Tensor], Tensor]]
    if compiled:
        if rt.distributed or rt.cuda:
            raise ParamsError("gan.compile is for one CPU process: turn it off under torchrun or on a GPU")
        iteration = CompiledIteration(state.G, state.D, state.opt_g, state.opt_d, objective, z_dim, augment)
    else:
        rt.check_batch(batch_size, "gan.batch_size")
        G, D = rt.wrap(state.G), rt.wrap(state.D)  # DDP for the net being updated; the other is used plain

        def iteration(cond: Conditioning, batch_size: int, n_dis: int) -> tuple[list[Tensor], Tensor]:
            d_losses = []
            for k in range(n_dis):  # global batch and codes from the shared stream; each rank takes its share
                batch = cond.d_batch(batch_size)
                z = torch.randn(len(batch.y_gen), z_dim)
                with rt.rank_rng(state.step * (n_dis + 1) + k):
                    d_losses.append(
                        d_step(state.G, D, state.opt_d, objective, _shard_batch(rt, batch), rt.shard(z), augment, rt)
                    )
            y = cond.g_labels(batch_size)
            z = torch.randn(batch_size, z_dim)
            with rt.rank_rng(state.step * (n_dis + 1) + n_dis):
                g_loss = g_step(G, state.D, state.opt_g, objective, rt.shard(y), rt.shard(z), augment, rt)
            return d_losses, g_loss

    d_acc, g_acc, n_acc = torch.zeros((), device=rt.device), torch.zeros((), device=rt.device), 0
    while state.step < steps:
        d_losses, g_loss = iteration(cond, batch_size, n_dis)
        for d_loss in d_losses:
            d_acc += d_loss / n_dis
        g_acc += g_loss
        n_acc += 1
        state.step += 1
        if ema_decay > 0:
            ema_update(state.G_ema, state.G, 0.0 if state.step <= ema_start else ema_decay)
        if state.step % log_every == 0 or state.step == steps:
            d_mean, g_mean = float(rt.mean(d_acc)) / n_acc, float(rt.mean(g_acc)) / n_acc
            record = {"step": float(state.step), "d_loss": d_mean, "g_loss": g_mean}
            state.history.append(record)
            d_acc, g_acc, n_acc = torch.zeros_like(d_acc), torch.zeros_like(g_acc), 0
            if progress:
                progress(state.step, record)
        if state.step == steps:
            if ema_decay > 0:
                standing_stats(state.G_ema, z_dim, cond.g_labels)
            else:
                state.G_ema.load_state_dict(state.G.state_dict())
        if on_checkpoint and (state.step == steps or (checkpoint_every and state.step % checkpoint_every == 0)):
            on_checkpoint(state)
    return state


@torch.no_grad()
def sample(G: nn.Module, y: Tensor, z_dim: int, batch_size: int = 500) -> Tensor:
    """Images from G (in eval mode) at labels y, generated in batches."""
    was_training = G.training
    G.eval()
    device = device_of(G)
    out = torch.cat(
        [G(torch.randn(s.stop - s.start, z_dim).to(device), y[s].to(device)).cpu() for s in batches(len(y), batch_size)]
    )
    G.train(was_training)
    return out
