"""Rejection sampling of fakes by an estimated density ratio (+RS), batched over labels.

For each target label: a burn-in batch sets M = max psi; then rounds of candidates, M raised to
the running max, a candidate kept when u <= psi / M (u ~ U(0, 1)) and, for continuous labels,
when its predicted label lies in the window |y_pred - y| <= zeta (M, in burn-in as after it, is
the max over in-window candidates only: those are the ones that can be kept). Labels are processed a chunk at
a time, every round generating at most about `batch_size` candidates for all unfinished labels of
the chunk at once; accepted fakes go to `sink` as they come, so memory never holds more than one
round of candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pipeline.utils import Progress

Tensor = torch.Tensor
Score = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""score(x, y) -> (psi >= 0, in_window: bool) for candidates x generated at labels y."""


@dataclass(frozen=True)
class RSStats:
    """Per target label: candidates proposed after burn-in, candidates that passed (u <= psi / M
    and the window), fakes handed out, candidates outside the label window, and the final M."""

    labels: Tensor
    n_per_label: int
    proposed: Tensor
    passed: Tensor
    accepted: Tensor
    out_of_window: Tensor
    M: Tensor

    @property
    def acceptance_rate(self) -> Tensor:
        return self.passed.float() / self.proposed.clamp(min=1).float()

    def summary(self) -> dict[str, float]:
        rate = self.acceptance_rate
        return {
            "acceptance_rate": float(self.passed.sum() / self.proposed.sum().clamp(min=1)),
            "acceptance_rate_min": float(rate.min()),
            "acceptance_rate_max": float(rate.max()),
            "out_of_window_fraction": float(self.out_of_window.sum() / self.proposed.sum().clamp(min=1)),
            "n_accepted": int(self.accepted.sum()),
            "n_proposed": int(self.proposed.sum()),
            "n_labels_short": int((self.accepted < self.n_per_label).sum()),
        }


def window_mask(y_pred: Tensor, y: Tensor, zeta: float | None) -> Tensor:
    """Continuous labels: keep a fake whose predicted label is within zeta of its condition (None: keep all)."""
    if zeta is None:
        return torch.ones_like(y, dtype=torch.bool)
    return (y_pred - y).abs() <= zeta


def _group_max(values: Tensor, group: Tensor, n_groups: int) -> Tensor:
    return torch.zeros(n_groups).scatter_reduce(0, group, values, reduce="amax", include_self=True)


@torch.no_grad()
def rejection_sample(
    generate: Callable[[Tensor], Tensor],
    score: Score,
    labels: Tensor,
    n_per_label: int,
    sink: Callable[[Tensor, Tensor, Tensor], None],
    *,
    burnin: int,
    batch_size: int = 1000,
    max_proposals: int | None = None,
    progress: Progress | None = None,
) -> RSStats:
    """Hand `n_per_label` accepted fakes at each of `labels` to sink(x, y, psi), chunk by chunk.

    `max_proposals` (default 100 x n_per_label, at least 1000) caps the candidates per label: a
    label the generator cannot serve ends short rather than looping forever (see RSStats)."""
    L = len(labels)
    cap = max_proposals or max(100 * n_per_label, 1000)
    proposed = torch.zeros(L, dtype=torch.long)
    passed, accepted, outside = torch.zeros_like(proposed), torch.zeros_like(proposed), torch.zeros_like(proposed)
    M = torch.zeros(L)
    chunk = max(1, batch_size // max(1, min(n_per_label, batch_size)))
    done_total = 0
    for start in range(0, L, chunk):
        ids = torch.arange(start, min(start + chunk, L))
        # burn-in: M = max psi over `burnin` candidates per label (not accepted, only measured)
        burn = ids.repeat_interleave(burnin)
        for s in range(0, len(burn), batch_size):
            b = burn[s : s + batch_size]
            psi, ok = score(generate(labels[b]), labels[b])
            M = torch.maximum(M, _group_max(psi * ok, b, L))
        while True:
            need = n_per_label - accepted[ids]
            active = ids[(need > 0) & (proposed[ids] < cap)]
            if not len(active):
                break
            r = max(1, batch_size // len(active))
            idx = active.repeat_interleave(r)
            y = labels[idx]
            x = generate(y)
            psi, ok = score(x, y)
            M = torch.maximum(M, _group_max(psi * ok, idx, L))  # M over in-window candidates only
            u = torch.rand(len(idx))
            keep = ok & (u * M[idx] <= psi)  # u <= psi / M, written so that M = 0 (psi = 0 everywhere) accepts
            per = keep.view(len(active), r)
            take = (per & (per.cumsum(1) <= (n_per_label - accepted[active])[:, None])).view(-1)
            proposed[active] += r
            passed[active] += per.sum(1)
            outside[active] += (~ok).view(len(active), r).sum(1)
            accepted[active] += take.view(len(active), r).sum(1)
            if take.any():
                sink(x[take], y[take], psi[take])
                done_total += int(take.sum())
                if progress:
                    progress(done_total, {"accept": float(passed.sum() / proposed.sum())})
    return RSStats(labels, n_per_label, proposed, passed, accepted, outside, M)


def collect(
    generate: Callable[[Tensor], Tensor], score: Score, labels: Tensor, n_per_label: int, **kwargs
) -> tuple[Tensor, Tensor, Tensor, RSStats]:
    """rejection_sample into memory: (x, y, psi, stats), ordered as accepted."""
    xs: list[Tensor] = []
    ys: list[Tensor] = []
    ps: list[Tensor] = []

    def sink(x: Tensor, y: Tensor, psi: Tensor) -> None:
        xs.append(x)
        ys.append(y)
        ps.append(psi)

    stats = rejection_sample(generate, score, labels, n_per_label, sink, **kwargs)
    if not xs:
        return torch.empty(0), labels[:0], torch.empty(0), stats
    return torch.cat(xs), torch.cat(ys), torch.cat(ps), stats
