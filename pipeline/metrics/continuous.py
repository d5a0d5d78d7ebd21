"""Metrics for continuous labels: the circle simulation, Label Score, Diversity, FID / intra-FID over label bins.

Pure functions: tensors in, floats / dicts out; statistics in float64. Stds are unbiased (0.0 for a single value).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from pipeline.metrics.image import _check_pair, _features, _stats, frechet_distance, intra_fid
from pipeline.nets.backbone import Backbone
from pipeline.utils import label_positions


def _std(x: Tensor) -> float:
    return float(x.std()) if x.numel() > 1 else 0.0


def counts_by_label(y: Tensor, labels: Tensor) -> Tensor:
    """How many of the labels y (fakes grouped by label, e.g. from rejection sampling) equal each of
    `labels`: the `counts` of circle_metrics."""
    return torch.bincount(label_positions(labels, y), minlength=len(labels))


def circle_metrics(
    fake: Tensor,
    angles: Tensor,
    radius: float = 1.0,
    std: float = 0.02,
    quality_sigmas: float = 4.0,
    counts: Tensor | None = None,
) -> dict[str, float]:
    """CcGAN's circle metrics for fakes generated at ``angles`` (A,) in radians: ``fake`` is (A, n, 2), n per
    angle, or (N, 2) grouped by angle in the order of ``angles`` with ``counts`` (A,) fakes per angle (rejection
    sampling may leave an angle short, even empty).

    The true distribution at angle t is N(mu_t, std^2 I), mu_t = (R sin t, R cos t).

    - ``pct_high_quality``: % of all fakes with ||x - mu_t|| <= quality_sigmas * std;
    - ``pct_recovered_modes``: % of the A angles with at least one high-quality fake;
    - ``w2`` / ``w2_std``: mean / std over angles (those with at least 2 fakes) of the squared 2-Wasserstein
      distance between N(mu_t, std^2 I) and N(m, S), m and S the sample mean and unbiased sample covariance of
      that angle's fakes: ||mu_t - m||^2 + tr(S1 + S - 2 (S1^1/2 S S1^1/2)^1/2) with S1 = std^2 I, which with
      l_i the eigenvalues of S is ||mu_t - m||^2 + 2 std^2 + tr S - 2 std tr S^1/2
      = ||mu_t - m||^2 + sum_i (sqrt(l_i) - std)^2.
    """
    A = angles.shape[0] if angles.dim() == 1 else -1
    if fake.dim() == 3 and counts is None and fake.shape[2] == 2 and fake.shape[1] >= 2 and fake.shape[0] == A:
        counts = torch.full((A,), fake.shape[1], dtype=torch.long)
        fake = fake.reshape(-1, 2)
    elif not (
        fake.dim() == 2
        and fake.shape[1] == 2
        and counts is not None
        and counts.shape == (A,)
        and int(counts.sum()) == len(fake)
    ):
        raise ValueError(
            "fake must be (A, n >= 2, 2), or (N, 2) with counts (A,) summing to N, for angles (A,); got "
            f"{tuple(fake.shape)}, "
            f"angles {tuple(angles.shape)}, counts {None if counts is None else tuple(counts.shape)}"
        )
    x = fake.double()
    t = angles.to(x.device, torch.float64)
    counts = counts.to(x.device)
    group = torch.repeat_interleave(torch.arange(A, device=x.device), counts)  # (N,) angle index of each fake
    mu = radius * torch.stack((t.sin(), t.cos()), dim=1)  # (A, 2)
    high = (x - mu[group]).norm(dim=1) <= quality_sigmas * std  # (N,)
    recovered = torch.zeros(A, dtype=x.dtype, device=x.device).index_add_(0, group, high.to(x.dtype)) > 0

    n = counts.double().clamp_min(1)[:, None]
    m = torch.zeros(A, 2, dtype=x.dtype, device=x.device).index_add_(0, group, x) / n
    centred = x - m[group]
    outer = centred[:, :, None] * centred[:, None, :]  # (N, 2, 2)
    cov = torch.zeros(A, 2, 2, dtype=x.dtype, device=x.device).index_add_(0, group, outer) / (
        n[:, :, None] - 1
    ).clamp_min(1)
    enough = counts >= 2
    eig = torch.linalg.eigvalsh(cov[enough]).clamp_min(0.0)  # clamp round-off negatives
    w2 = (mu[enough] - m[enough]).square().sum(dim=1) + (eig.sqrt() - std).square().sum(dim=1)
    return {
        "pct_high_quality": 100.0 * float(high.double().mean()) if len(x) else 0.0,
        "pct_recovered_modes": 100.0 * float(recovered.double().mean()),
        "w2": float(w2.mean()) if len(w2) else float("nan"),
        "w2_std": _std(w2),
    }


def _label_errors(pred: Tensor, y: Tensor) -> Tensor:
    """|pred - y| in float64, flattened."""
    if pred.numel() != y.numel() or pred.numel() == 0:
        raise ValueError(f"need equally many (> 0) predictions and labels, got {pred.numel()} and {y.numel()}")
    return (pred.reshape(-1).double() - y.reshape(-1).to(pred.device, torch.float64)).abs()


def label_score(pred: Tensor, y: Tensor) -> tuple[float, float]:
    """CcGAN's Label Score: mean and std of |pred - y|, pred an evaluation regressor's output on fakes generated
    at labels y (both in original label units)."""
    err = _label_errors(pred, y)
    return float(err.mean()), _std(err)


def label_score_by_bin(pred: Tensor, y: Tensor, lo: float, hi: float, n_bins: int) -> list[float]:
    """Label Score within each of ``n_bins`` equal-width label bins of [lo, hi] (see :func:`label_bins`):
    where along the label range the generator follows its condition. NaN for a bin without fakes."""
    err = _label_errors(pred, y)
    b = label_bins(y.reshape(-1), lo, hi, n_bins).to(err.device)
    sums = torch.zeros(n_bins, dtype=torch.float64, device=err.device).index_add_(0, b, err)
    return (sums / torch.bincount(b, minlength=n_bins)).tolist()


def diversity(pred_attr: Tensor, labels: Tensor) -> float:
    """CcGAN's Diversity: mean over distinct ``labels`` of H = -sum_k p_k ln p_k, p_k the fraction of that label's
    fakes whose predicted attribute class ``pred_attr`` is k. 0 when a label's fakes share one class, ln k for k
    equally frequent classes; higher = more diverse."""
    if pred_attr.numel() != labels.numel() or pred_attr.numel() == 0:
        raise ValueError(f"need equally many (> 0) classes and labels, got {pred_attr.numel()} and {labels.numel()}")
    _, label_idx = torch.unique(labels.reshape(-1), return_inverse=True)
    _, class_idx = torch.unique(pred_attr.reshape(-1).to(labels.device), return_inverse=True)
    n_labels, n_classes = int(label_idx.max()) + 1, int(class_idx.max()) + 1
    counts = torch.bincount(label_idx * n_classes + class_idx, minlength=n_labels * n_classes)
    p = counts.reshape(n_labels, n_classes).double()
    p = p / p.sum(dim=1, keepdim=True)
    return float(-torch.xlogy(p, p).sum(dim=1).mean())


def label_bins(y: Tensor, lo: float, hi: float, n_bins: int) -> Tensor:
    """Bin index (int64) of each label among ``n_bins`` equal-width bins over [lo, hi]:
    floor((y - lo) * n_bins / (hi - lo)) clamped to [0, n_bins - 1], so hi and labels outside go to the end bins."""
    if n_bins < 1 or not hi > lo:
        raise ValueError(f"need n_bins >= 1 and hi > lo, got n_bins={n_bins}, [{lo}, {hi}]")
    return torch.floor((y.double() - lo) * n_bins / (hi - lo)).clamp(0, n_bins - 1).long()


class _ForwardAsFeatures(Backbone):
    """``features(x) = model(x)``, for ``image._features``; starts in the wrapped model's train mode."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.head = nn.Identity()
        self.train(model.training)

    def features(self, x: Tensor) -> Tensor:
        return self.model(x)


def binned_fid(
    feature_model: nn.Module,
    real: Tensor,
    real_y: Tensor,
    fake: Tensor,
    fake_y: Tensor,
    lo: float,
    hi: float,
    n_bins: int,
    batch_size: int = 256,
) -> dict[str, float | int]:
    """FID of all fakes against all reals, and intra-FID over ``n_bins`` equal-width label bins of [lo, hi].

    Features: ``feature_model.features(x)`` when the model has that method (the project's classifiers and
    regressors), else ``feature_model(x)``; flattened to (N, F), computed once, in eval mode. Returns ``fid``,
    ``intra_fid`` (mean FID within bins holding >= 2 real and >= 2 fake images; ValueError if none does) and
    ``n_bins_used``.
    """
    if len(real) != len(real_y) or len(fake) != len(fake_y):
        raise ValueError("images and labels differ in length")
    _check_pair(real, fake)
    has_features = callable(getattr(feature_model, "features", None))
    model = cast(Backbone, feature_model) if has_features else _ForwardAsFeatures(feature_model)
    real_f, fake_f = _features(model, real, batch_size), _features(model, fake, batch_size)
    overall = frechet_distance(*_stats(real_f), *_stats(fake_f))
    # intra_fid with an identity feature model on the features themselves: no second pass through the network.
    given = _ForwardAsFeatures(nn.Identity())
    real_b, fake_b = label_bins(real_y, lo, hi, n_bins), label_bins(fake_y, lo, hi, n_bins)
    intra, per_bin = intra_fid(given, real_f, real_b, fake_f, fake_b, batch_size=max(len(real_f), len(fake_f)))
    return {"fid": overall, "intra_fid": intra, "n_bins_used": len(per_bin)}
