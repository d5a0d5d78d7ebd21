"""CycleGAN (Zhu et al. 2017): unpaired translation X <-> Y with two generators and two discriminators.

G: X -> Y and F: Y -> X; D_Y judges G(x) against real y, D_X judges F(y) against real x. The
generators minimise

    L_adv(G, D_Y) + L_adv(F, D_X) + lambda_cyc (|F(G(x)) - x|_1 + |G(F(y)) - y|_1)
                                  + lambda_id lambda_cyc (|G(y) - y|_1 + |F(x) - x|_1)

with the adversarial loss picked by name from pipeline.gan.losses (least squares in the paper);
each D minimises half its loss on real images and on fakes drawn from an ImagePool of past fakes.
The learning rate stays constant, then falls linearly to zero over the last steps.

Pure library code: it never reads params, prints or logs; it reports through `progress` and hands
its state to `on_checkpoint`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from pipeline.gan.losses import get_loss
from pipeline.gan.train import no_param_grads
from pipeline.utils import Progress, batches, device_of


def l1(x: Tensor, y: Tensor) -> Tensor:
    """mean |x - y| over every element (the cycle and identity losses)."""
    return (x - y).abs().mean()


def cycle_losses(G: nn.Module, F: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """G(x), F(y) and the two cycle losses |F(G(x)) - x|_1 and |G(F(y)) - y|_1."""
    fake_y, fake_x = G(x), F(y)
    return fake_y, fake_x, l1(F(fake_y), x), l1(G(fake_x), y)


def identity_losses(G: nn.Module, F: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """|G(y) - y|_1 and |F(x) - x|_1: each generator leaves images of its target domain alone."""
    return l1(G(y), y), l1(F(x), x)


class ImagePool:
    """A buffer of past fakes for the discriminator (Shrivastava et al. 2017), `size` images at most.

    Until it is full, each fake is stored and returned as it is. Once full, each fake is returned
    as it is with probability 1/2; otherwise a stored fake drawn uniformly is returned and the new
    one takes its place. Size 0 returns the fakes unchanged. Draws use torch's global generator."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.images is None else len(self.images)

    @torch.no_grad()
    def query(self, fakes: Tensor) -> Tensor:
        if self.size == 0:
            return fakes
        out = []
        for fake in fakes.detach():
            if len(self) < self.size:
                stored = fake.unsqueeze(0).clone()
                self.images = stored if self.images is None else torch.cat([self.images, stored])
                out.append(fake)
            elif torch.rand(()) < 0.5:
                out.append(fake)
            else:
                assert self.images is not None
                k = int(torch.randint(0, self.size, ()))
                out.append(self.images[k].clone())
                self.images[k] = fake
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": self.images if self.images is not None else torch.zeros(0)}

    def load_state_dict(self, sd: dict) -> None:
        self.size = int(sd["size"])
        self.images = sd["images"] if len(sd["images"]) else None


def lr_factor(step: int, steps: int, decay_start: int) -> float:
    """1 for steps before decay_start, then falling linearly to 0 at `steps` (the paper: constant for
    the first half, linear decay over the second)."""
    if step < decay_start or steps <= decay_start:
        return 1.0
    return max(0.0, (steps - step) / (steps - decay_start))


def _adam(modules: list[nn.Module], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    return torch.optim.Adam([p for m in modules for p in m.parameters()], lr=lr, betas=betas)


@dataclass
class CycleState:
    """Both generators and discriminators, their optimisers, the two pools, step and loss history."""

    G: nn.Module  # A -> B
    F: nn.Module  # B -> A
    D_a: nn.Module
    D_b: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    pool_a: ImagePool
    pool_b: ImagePool
    lr: float
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        G: nn.Module,
        F: nn.Module,
        D_a: nn.Module,
        D_b: nn.Module,
        lr: float,
        betas: tuple[float, float],
        pool: int,
    ) -> CycleState:
        return cls(
            G, F, D_a, D_b, _adam([G, F], lr, betas), _adam([D_a, D_b], lr, betas), ImagePool(pool), ImagePool(pool), lr
        )

    def state_dict(self) -> dict:
        return {
            "G_ab": self.G.state_dict(),
            "G_ba": self.F.state_dict(),
            "D_a": self.D_a.state_dict(),
            "D_b": self.D_b.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "pool_a": self.pool_a.state_dict(),
            "pool_b": self.pool_b.state_dict(),
            "step": self.step,
            "history": self.history,
            "rng": torch.get_rng_state(),
        }

    def load_state_dict(self, sd: dict) -> None:
        self.G.load_state_dict(sd["G_ab"])
        self.F.load_state_dict(sd["G_ba"])
        self.D_a.load_state_dict(sd["D_a"])
        self.D_b.load_state_dict(sd["D_b"])
        self.opt_g.load_state_dict(sd["opt_g"])
        self.opt_d.load_state_dict(sd["opt_d"])
        self.pool_a.load_state_dict(sd["pool_a"])
        self.pool_b.load_state_dict(sd["pool_b"])
        self.step = int(sd["step"])
        self.history = list(sd["history"])
        torch.set_rng_state(sd["rng"])


def cycle_step(
    s: CycleState, a: Tensor, b: Tensor, loss: str, lambda_cyc: float, lambda_id: float
) -> dict[str, Tensor]:
    """One generator update, then one update of both discriminators; the detached losses."""
    adv = get_loss(loss)
    with no_param_grads(s.D_a), no_param_grads(s.D_b):
        fake_b, fake_a, cyc_a, cyc_b = cycle_losses(s.G, s.F, a, b)
        g_adv = adv.g(s.D_b(fake_b)) + adv.g(s.D_a(fake_a))
        g_loss = g_adv + lambda_cyc * (cyc_a + cyc_b)
        ident = torch.zeros(())
        if lambda_id > 0:
            id_b, id_a = identity_losses(s.G, s.F, a, b)
            ident = id_b + id_a
            g_loss = g_loss + lambda_id * lambda_cyc * ident
        s.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
    s.opt_g.step()
    d_b = 0.5 * adv.d(s.D_b(b), s.D_b(s.pool_b.query(fake_b)))
    d_a = 0.5 * adv.d(s.D_a(a), s.D_a(s.pool_a.query(fake_a)))
    s.opt_d.zero_grad(set_to_none=True)
    (d_a + d_b).backward()
    s.opt_d.step()
    return {
        "d_loss": (d_a + d_b).detach(),
        "g_adv": g_adv.detach(),
        "cycle": (cyc_a + cyc_b).detach(),
        "identity": ident.detach(),
    }


def train_cycle(
    state: CycleState,
    a: Tensor,
    b: Tensor,
    *,
    steps: int,
    batch_size: int,
    decay_start: int,
    loss: str = "ls",
    lambda_cyc: float = 10.0,
    lambda_id: float = 0.5,
    log_every: int = 50,
    checkpoint_every: int = 0,
    on_checkpoint: Callable[[CycleState], None] | None = None,
    progress: Progress | None = None,
) -> CycleState:
    """Train from state.step up to `steps` steps on unpaired batches (indices into `a` and into `b`
    drawn independently, uniformly), on the nets' device. Logged: means over each `log_every` steps."""
    device = device_of(state.G)
    for m in (state.G, state.F, state.D_a, state.D_b):
        m.train()
    acc: dict[str, Tensor] = {}
    n_acc = 0
    while state.step < steps:
        factor = lr_factor(state.step, steps, decay_start)
        for opt in (state.opt_g, state.opt_d):
            for group in opt.param_groups:
                group["lr"] = state.lr * factor
        ia, ib = torch.randint(0, len(a), (batch_size,)), torch.randint(0, len(b), (batch_size,))
        losses = cycle_step(state, a[ia].to(device), b[ib].to(device), loss, lambda_cyc, lambda_id)
        for k, v in losses.items():
            acc[k] = acc.get(k, 0.0) + v.float().cpu()
        n_acc += 1
        state.step += 1
        if state.step % log_every == 0 or state.step == steps:
            record = {"step": float(state.step), **{k: float(v) / n_acc for k, v in acc.items()}}
            state.history.append(record)
            acc, n_acc = {}, 0
            if progress:
                progress(state.step, record)
        if on_checkpoint and (state.step == steps or (checkpoint_every and state.step % checkpoint_every == 0)):
            on_checkpoint(state)
    return state


@torch.no_grad()
def translate(G: nn.Module, x: Tensor, batch_size: int = 256) -> Tensor:
    """G(x) in eval mode and batches, on G's device; returned on the CPU."""
    was_training = G.training
    G.eval()
    device = device_of(G)
    out = torch.cat([G(x[s].to(device)).cpu() for s in batches(len(x), batch_size)])
    G.train(was_training)
    return out
