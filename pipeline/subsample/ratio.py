"""DRE-F-SP and cDRE-F-cSP: a density ratio r(h) = p_real(h) / p_fake(h) in a feature space.

psi(h) (or psi(h | y)) is an MLP with a ReLU output (for class labels, DRE-F-SP is one MLP per
class, as the paper trains it), trained with the Softplus loss
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

from pipeline.gan.vicinal import uniform_in_window
from pipeline.nets.labels import EMBED_DIM, Y2H, frozen
from pipeline.runtime import Runtime, current
from pipeline.utils import Progress, batches, minimise

Tensor = torch.Tensor

LABEL_EMBEDDINGS = ("none", "class", "y2h", "per_class")
NORMS = ("group", "none")


def softplus_dre_loss(psi_real: Tensor, psi_fake: Tensor, penalty: float, groups: Tensor | None = None) -> Tensor:
    """The Softplus DRE loss with the DRE penalty lambda (ALGORITHMS.md section 2). With `groups`
    (the fakes' classes, for one ratio net per class) the penalty holds each class's mean psi at 1:
    sum_c (n_c / n) (mean_c psi_fake - 1)^2, so the loss is the class-weighted sum of the per-class
    losses (reals and fakes pair at equal labels, so the other two terms split the same way)."""
    fake_term = (torch.sigmoid(psi_fake) * psi_fake - F.softplus(psi_fake)).mean()
    if groups is None:
        spread = (psi_fake.mean() - 1.0) ** 2
    else:
        _, g, counts = torch.unique(groups, return_inverse=True, return_counts=True)
        means = torch.zeros(len(counts), dtype=psi_fake.dtype, device=psi_fake.device).index_add(0, g, psi_fake)
        means = means / counts
        spread = (counts / len(groups) * (means - 1.0) ** 2).sum()
    return fake_term - torch.sigmoid(psi_real).mean() + penalty * spread


def _mlp(d: int, width: int, depth: int, dropout: float, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        norm_layer = [nn.GroupNorm(8, width)] if norm == "group" else []
        layers += [nn.Linear(d if i == 0 else width, width), *norm_layer, nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers, nn.Linear(width, 1), nn.ReLU())


class RatioNet(nn.Module):
    """psi(h) >= 0, or psi(h | y) with `label` "class" (nn.Embedding) or "y2h" (frozen y2h of CcGAN),
    or with "per_class" one psi_c(h) per class (DRE-F-SP as the paper trains it for class labels:
    each class's own ratio p_real(h | c) / p_fake(h | c)), psi(h | y) = psi_y(h).

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
        self.heads: nn.ModuleList | None = None
        if label in ("class", "per_class") and num_classes < 1:
            raise ValueError(f"a {label.replace('_', '-')} ratio needs num_classes >= 1")
        if label == "class":
            self.embed = nn.Embedding(num_classes, embed_dim)
        elif label == "y2h":
            self.embed = frozen(Y2H())
            embed_dim = EMBED_DIM
        if label == "per_class":
            self.heads = nn.ModuleList(_mlp(in_dim, width, depth, dropout, norm) for _ in range(num_classes))
        else:
            self.net = _mlp(in_dim + (embed_dim if self.embed is not None else 0), width, depth, dropout, norm)

    @property
    def conditional(self) -> bool:
        return self.embed is not None or self.heads is not None

    def forward(self, h: Tensor, y: Tensor | None = None) -> Tensor:
        if self.conditional and y is None:
            raise ValueError("a conditional ratio net needs labels")
        if self.heads is not None:
            assert y is not None
            out = h.new_zeros(len(h))
            for c in torch.unique(y).tolist():  # each sample through its own class's head only
                rows = (y == c).nonzero().view(-1)
                out = out.index_put((rows,), self.heads[int(c)](h[rows]).view(-1))
            return out
        if self.embed is not None:
            h = torch.cat([h, self.embed(y)], dim=1)
        return self.net(h).view(-1)


Window = tuple[Callable[[Tensor], Tensor], float]
"""(head, zeta): continuous labels' window, head(h) the feature extractor's predicted label."""


@torch.inference_mode()
def fake_features(
    features: Callable[[Tensor], Tensor],
    generate: Callable[[Tensor], Tensor],
    labels: Tensor,
    batch_size: int = 500,
    window: Window | None = None,
    max_redraws: int = 10,
) -> Tensor:
    """Features of one fake for each of `labels`: (len(labels), D), generated and read under
    inference mode (no autograd bookkeeping), returned as a plain tensor a ratio net can train on.

    With a `window` (continuous labels, as cDR-RS trains): each fake is generated at a label drawn
    uniformly on [y - zeta, y + zeta] cut to [0, 1] and kept only when head(h) lies within zeta of
    y, as rejection sampling keeps them; a rejected one is drawn again, at most `max_redraws`
    times (then its last draw stays)."""

    def draw(y: Tensor) -> Tensor:
        if window is not None:
            y = uniform_in_window(y, window[1])
        return torch.cat([features(generate(y[s])) for s in batches(len(y), batch_size)])

    h = draw(labels)
    if window is not None:
        head, zeta = window
        todo = ((head(h).view(-1) - labels).abs() > zeta).nonzero().view(-1)
        for _ in range(max_redraws):
            if not len(todo):
                break
            h_new = draw(labels[todo])
            h[todo] = h_new
            todo = todo[(head(h_new).view(-1) - labels[todo]).abs() > zeta]
    return h.clone()  # inference tensors cannot be saved for a backward pass


def fake_feature_pool(draw: Callable[[Tensor], Tensor], labels: Tensor, per_label: int) -> Tensor:
    """Features of `per_label` fakes for each of `labels`, draw(y) -> features (e.g. fake_features
    with its generator, feature net and window bound): (len(labels), per_label, D).

    Row i pairs with the real sample of label labels[i] (cDRE-F-cSP trains on pairs at equal labels)."""
    return draw(labels.repeat_interleave(per_label)).view(len(labels), per_label, -1)


class FreshFakes:
    """Fresh fakes for the ratio nets' batches, a block at a time.

    A block draws the real indices of `block` batches at once (uniform over the n training reals)
    and one new fake at each index's label, draw(y) -> features; then serves `block x reuse`
    batches of (real indices, fake features) pairs: `reuse` passes over the block, each in a new
    random order, so every fake of a block is shown exactly `reuse` times and never after its
    block (the next batch draws a new block). block = reuse = 1 is the reference's recipe, new
    fakes for every batch. A larger block generates in larger batches (cheaper per fake); reuse > 1
    generates reuse times fewer fakes per step."""

    def __init__(self, draw: Callable[[Tensor], Tensor], n: int, batch_size: int, block: int = 1, reuse: int = 1):
        if block < 1 or reuse < 1:
            raise ValueError(f"fresh fakes: block and reuse must be >= 1, not {block} and {reuse}")
        self.draw, self.n, self.batch_size, self.block, self.reuse = draw, n, batch_size, block, reuse
        self.blocks_drawn = 0
        self._order = torch.empty(0, dtype=torch.long)

    def __call__(self) -> tuple[Tensor, Tensor]:
        if not len(self._order):
            size = self.block * self.batch_size
            self._idx = torch.randint(0, self.n, (size,))
            self._h = self.draw(self._idx)
            self.blocks_drawn += 1
            passes = [torch.arange(size)] if self.reuse == 1 else [torch.randperm(size) for _ in range(self.reuse)]
            self._order = torch.cat(passes)
        pos, self._order = self._order[: self.batch_size], self._order[self.batch_size :]
        return self._idx[pos], self._h[pos]


def train_ratio(
    net: RatioNet,
    h_real: Tensor,
    y_real: Tensor,
    h_fake: Tensor | Callable[[Tensor], Tensor],
    *,
    penalty: float,
    steps: int,
    batch_size: int,
    lr: float = 1e-4,
    weight_decay: float = 1e-4,
    log_every: int = 50,
    progress: Progress | None = None,
    rt: Runtime | None = None,
    block: int = 1,
    reuse: int = 1,
) -> list[dict[str, float]]:
    """Adam on the Softplus loss. Each batch: reals (h_real[i], y_real[i]) and, for each, one fake
    generated at its label: from the pool `h_fake[i, j]` (fake_feature_pool's), or when h_fake is
    a function, fresh ones, h_fake(y_real[i]) (features of new fakes at those labels, e.g.
    fake_features), drawn `block` batches at a time and each shown `reuse` times (FreshFakes);
    an unconditional net ignores the labels. Returns the loss history.

    Under torchrun (`rt`) every rank draws the global batch and computes psi on its share, DDP
    averaging the gradients. The penalty squares the mean of psi over each rank's share of fakes,
    not over the global batch: the one term that differs from one process (by O(1 / batch))."""
    rt = rt or current()  # the process's runtime (pipeline.runtime.start); LOCAL unless started
    rt.check_batch(batch_size, "dre.batch_size")
    net = rt.prepare(net)
    model = rt.wrap(net, find_unused_parameters=net.heads is not None)  # a batch may miss some classes
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    net.train()
    n = len(h_real)
    calls = iter(range(steps))
    # on the shared stream: every rank draws the same global batch
    fresh = FreshFakes(lambda i: h_fake(y_real[i]), n, batch_size, block, reuse) if callable(h_fake) else None

    def pairs() -> tuple[Tensor, Tensor]:
        if fresh is not None:
            return fresh()
        assert isinstance(h_fake, Tensor)
        i = torch.randint(0, n, (batch_size,))
        return i, h_fake[i, torch.randint(0, h_fake.shape[1], (batch_size,))]

    def batch_loss() -> Tensor:
        i, h_f = pairs()
        h_r, h_f = rt.shard(h_real[i]), rt.shard(h_f)
        y = rt.shard(y_real[i]) if net.conditional else None
        with rt.rank_rng(next(calls)):  # dropout masks: this rank's own stream
            psi = model(torch.cat([h_r, h_f]), None if y is None else torch.cat([y, y]))
        return softplus_dre_loss(psi[: len(h_r)], psi[len(h_r) :], penalty, y if net.heads is not None else None)

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
    groups = y_fake if net.heads is not None else None
    return float(softplus_dre_loss(ratio(net, h_real, y_real), ratio(net, h_fake, y_fake), penalty, groups))
