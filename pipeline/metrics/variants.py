"""Measuring GAN variants side by side: the labels fakes are evaluated at, one row of metrics per
variant (and per subsampling method), and the equal-label comparison of subsampled rows."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

import torch

from pipeline.data import training_label_grid
from pipeline.metrics.continuous import counts_by_label
from pipeline.utils import Progress

if TYPE_CHECKING:
    from pipeline.subsample.subsampler import Subsampler

MetricsOf = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict[str, float]]


def evaluation_labels(exp, ds) -> torch.Tensor:
    """The labels fakes are evaluated (and subsampled) at, as G takes them: every class; for a
    regression set, evaluate.n_labels evenly spaced over the training range (normalised); for
    the circle, its unseen evaluation angles (normalised)."""
    if exp.task == "classification":
        return torch.arange(ds.num_classes)
    if exp.task == "circle":
        return ds.normalise(torch.unique(ds.y_test))
    return training_label_grid(ds, exp.evaluate.n_labels)


def variant_rows(
    G: torch.nn.Module,
    variant: str,
    subsamplers: dict[str, Callable[[], Subsampler | None]],
    labels: torch.Tensor,
    n: int,
    metrics_of: MetricsOf,
    *,
    z_dim: int,
    burnin: int,
    batch_size: int,
    bar: Callable[[str, int], AbstractContextManager[Progress | None]] = lambda name, total: nullcontext(),
) -> tuple[dict, dict]:
    """metrics_of(x, y, keep) of n fakes per label of one GAN variant G (row "<variant>"; `keep`
    is a boolean mask over `labels`: the labels the fakes x, y were drawn at). `subsamplers` maps
    each method ("none", and "dre" / "cdre" for the variant the dre stage subsampled) to a loader
    of its Subsampler (None for "none"), called just before its draw; each method other than
    "none" adds a row "<variant>+<method>" with the acceptance rate and the labels left short.
    `bar(name, total)` gives each draw a progress callback.

    Returns (rows, equal_rows). With more than one method, equal_rows holds the rows again,
    measured only on the labels that every one of them filled (all n fakes), with their number
    `n_labels`: rejection sampling leaves the hard labels short, and a row scored on the easier
    labels alone is not comparable to one scored on all of them. It is {} otherwise."""
    from pipeline.subsample.subsampler import draw

    rows, drawn = {}, {}
    everything = torch.ones(len(labels), dtype=torch.bool)
    for method, subsampler in subsamplers.items():
        with bar(f"{variant} fakes ({method})", len(labels) * n) as progress:
            x, y, stats = draw(
                G, z_dim, labels, n, subsampler(), burnin=burnin, batch_size=batch_size, progress=progress
            )
        row = metrics_of(x, y, everything)
        if stats is not None:
            summary = stats.summary()
            row["acceptance_rate"] = summary["acceptance_rate"]
            row["labels_short"] = summary["n_labels_short"]
        name = variant if method == "none" else f"{variant}+{method}"
        rows[name], drawn[name] = row, (x, y)
    return rows, equal_label_rows(drawn, rows, labels, n, metrics_of) if len(subsamplers) > 1 else {}


def equal_label_rows(
    drawn: dict[str, tuple[torch.Tensor, torch.Tensor]],
    rows: dict[str, dict],
    labels: torch.Tensor,
    n: int,
    metrics_of: MetricsOf,
) -> dict[str, dict]:
    """Each row's metrics on the labels that every row of `drawn` (name -> fakes x, y grouped by
    label) filled with n fakes, with their number `n_labels`: reused from `rows` when no label was
    left short, measured again on the common labels when some were, empty (but n_labels 0) when none is common."""
    filled = torch.stack([counts_by_label(y, labels) >= n for _, y in drawn.values()]).all(0)
    equal = {}
    for name, (x, y) in drawn.items():
        if not bool(filled.any()):
            row = {}
        elif bool(filled.all()):
            row = {k: v for k, v in rows[name].items() if k not in ("acceptance_rate", "labels_short")}
        else:
            keep = torch.isin(y, labels[filled])
            row = metrics_of(x[keep], y[keep], filled)
        equal[name] = {**row, "n_labels": int(filled.sum())}
    return equal
