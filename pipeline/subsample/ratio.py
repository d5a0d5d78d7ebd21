"""DRE-F-SP and cDRE-F-cSP: a density ratio r(h) = p_real(h) / p_fake(h) in a feature space.

psi(h) (or psi(h | y)) is an MLP with a ReLU output, trained with the Softplus loss
  L = E_fake[sigmoid(psi) psi - softplus(psi)] - E_real[sigmoid(psi)] + lambda (E_fake[psi] - 1)^2
whose pointwise minimiser is psi = p_real / p_fake; the last term (the "DRE penalty") keeps the
fakes' mean ratio at 1. The conditional form takes the label through an embedding concatenated
with h: a learnt nn.Embedding for classes, CcGAN's frozen y2h for continuous labels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.nets.labels import EMBED_DIM, Y2H, frozen
from pipeline.runtime import Runtime, current
from pipeline.utils import Progress, batches, minimise

Tensor = torch.Tensor

LABEL_EMBEDDINGS = ("none", "class", "y2h")
NORMS = ("group", "none")


def softplus_dre_loss(psi_real: Tensor, psi_fake: Tensor, penalty: float) -> Tensor:
    """The Softplus DRE loss with the DRE penalty lambda (ALGORITHMS.md section 2)."""
    fake_term = (torch.sigmoid(psi_fake) * psi_fake - F.softplus(psi_fake)).mean()
    return fake_term - torch.sigmoid(psi_real).mean() + penalty * (psi_fake.mean() - 1.0) ** 2


class RatioNet(nn.Module):
    """psi(h) >= 0, or psi(h | y) with `label` "class" (nn.Embedding) or "y2h" (frozen y2h of CcGAN).

    Hidden layers: Linear, GroupNorm, ReLU, Dropout (the reference's 5-layer MLP, narrower). `norm`
    "none" drops the GroupNorm: on the circle's 16-d codes of 2-D points psi came out flat with it
    (GroupNorm rescales each sample's hidden units, and what sets the ratio there is scale-like)."""

    def __init__(
        self,
        in_dim: int,
        *,
        width: int = 256,
        depth: int = 4,
        dropout: float = 0.5,
        label: str = "none",
        num_classes: int = 0,
        embed_dim: int = 16,
        norm: str = "group",
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r} (known: {', '.join(NORMS)})")
        if label not in LABEL_EMBEDDINGS:
            raise ValueError(f"unknown label embedding {label!r} (known: {', '.join(LABEL_EMBEDDINGS)})")
        self.label = label
        self.embed: nn.Module | None = None
        if label == "class":
            if num_classes < 1:
                raise ValueError("a class-conditional ratio needs num_classes >= 1")
            self.embed = nn.Embedding(num_classes, embed_dim)
        elif label == "y2h":
            self.embed = frozen(Y2H())
            embed_dim = EMBED_DIM
        d = in_dim + (embed_dim if self.embed is not None else 0)
        layers: list[nn.Module] = []
        for i in range(depth):
            norm_layer = [nn.GroupNorm(8, width)] if norm == "group" else []
            layers += [nn.Linear(d if i == 0 else width, width), *norm_layer, nn.ReLU(), nn.Dropout(dropout)]
        self.net = nn.Sequential(*layers, nn.Linear(width, 1), nn.ReLU())

    @property
    def conditional(self) -> bool:
        return self.embed is not None

    def forward(self, h: Tensor, y: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            if y is None:
                raise ValueError("a conditional ratio net needs labels")
            h = torch.cat([h, self.embed(y)], dim=1)
        return self.net(h).view(-1)


@torch.no_grad()
def fake_feature_pool(
    features: Callable[[Tensor], Tensor],
    generate: Callable[[Tensor], Tensor],
    labels: Tensor,
    per_label: int,
    batch_size: int = 500,
) -> Tensor:
    """Features of `per_label` fakes generated at each of `labels`: (len(labels), per_label, D).

    Row i pairs with the real sample of label labels[i] (cDRE-F-cSP trains on pairs at equal labels)."""
    y = labels.repeat_interleave(per_label)
    h = torch.cat([features(generate(y[s])) for s in batches(len(y), batch_size)])
    return h.view(len(labels), per_label, -1)


def train_ratio(
    net: RatioNet,
    h_real: Tensor,
    y_real: Tensor,
    h_fake: Tensor,
    *,
    penalty: float,
    steps: int,
    batch_size: int,
    lr: float = 1e-4,
    weight_decay: float = 1e-4,
    log_every: int = 50,
    progress: Progress | None = None,
    rt: Runtime | None = None,
) -> list[dict[str, float]]:
    """Adam on the Softplus loss. Each batch: reals (h_real[i], y_real[i]) and, for each, one of the
    fakes generated at its label (h_fake[i, j], the pool of `fake_feature_pool`); an unconditional
    net ignores the labels. Returns the loss history.

    Under torchrun (`rt`) every rank draws the global batch and computes psi on its share, DDP
    averaging the gradients. The penalty squares the mean of psi over each rank's share of fakes,
    not over the global batch: the one term that differs from one process (by O(1 / batch))."""
    rt = rt or current()  # the process's runtime (pipeline.runtime.start); LOCAL unless started
    rt.check_batch(batch_size, "dre.batch_size")
    net = rt.prepare(net)
    model = rt.wrap(net)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    net.train()
    n, k = h_fake.shape[:2]
    calls = iter(range(steps))

    def batch_loss() -> Tensor:
        i = torch.randint(0, n, (batch_size,))
        j = torch.randint(0, k, (batch_size,))
        h_r, h_f = rt.shard(h_real[i]), rt.shard(h_fake[i, j])
        y = rt.shard(y_real[i]) if net.conditional else None
        with rt.rank_rng(next(calls)):  # dropout masks: this rank's own stream
            psi = model(torch.cat([h_r, h_f]), None if y is None else torch.cat([y, y]))
        return softplus_dre_loss(psi[: len(h_r)], psi[len(h_r) :], penalty)

    history = minimise(opt, batch_loss, steps, log_every=log_every, progress=progress, rt=rt)
    net.eval().cpu()
    return history


@torch.no_grad()
def ratio(net: RatioNet, h: Tensor, y: Tensor | None = None, batch_size: int = 2048) -> Tensor:
    """psi in eval mode, in batches."""
    net.eval()
    return (
        torch.cat([net(h[s], None if y is None or not net.conditional else y[s]) for s in batches(len(h), batch_size)])
        if len(h)
        else torch.empty(0)
    )


@torch.no_grad()
def dre_loss(net: RatioNet, h_real: Tensor, y_real: Tensor, h_fake: Tensor, y_fake: Tensor, penalty: float) -> float:
    """The Softplus loss of a trained net on given reals and fakes (e.g. held-out ones), in eval mode."""
    return float(softplus_dre_loss(ratio(net, h_real, y_real), ratio(net, h_fake, y_fake), penalty))
