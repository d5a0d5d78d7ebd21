"""Metrics for continuous labels: the circle simulation, Label Score, Diversity, FID over label bins."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.metrics.image import _features, _stats, frechet_distance, intra_fid


def circle_metrics(fake: Tensor, angles: Tensor, radius: float = 1.0, std: float = 0.02, quality_sigmas: float = 4.0) -> dict[str, float]:
    """CcGAN's circle metrics for fakes (A, n, 2) generated at A angles (radians), n per angle.

    The true distribution at angle t is N(mu_t, std^2 I), mu_t = (R sin t, R cos t).
    - pct_high_quality: share (%) of fakes within quality_sigmas * std of their angle's centre;
    - pct_recovered_modes: share (%) of angles with at least one high-quality fake;
    - w2: mean over angles of the squared 2-Wasserstein distance between N(mu_t, std^2 I) and
      the Gaussian fitted to the angle's fakes (mean m, unbiased covariance S):
      ||mu_t - m||^2 + tr(std^2 I + S - 2 (std S std)^{1/2}) = ||mu_t - m||^2 + 2 std^2 + tr S - 2 std tr S^{1/2}.
    """
    if fake.dim() != 3 or fake.shape[2] != 2 or fake.shape[0] != len(angles) or fake.shape[1] < 2:
        raise ValueError(f"fake must be (A, n >= 2, 2) with A = len(angles), got {tuple(fake.shape)} and {len(angles)} angles")
    f = fake.double()
    t = angles.double()
    centres = radius * torch.stack([torch.sin(t), torch.cos(t)], 1)
    good = (f - centres[:, None]).norm(dim=2) <= quality_sigmas * std
    m = f.mean(1)
    d = f - m[:, None]
    cov = d.transpose(1, 2) @ d / (f.shape[1] - 1)
    eig = torch.linalg.eigvalsh(cov).clamp_min(0)
    w2 = ((centres - m) ** 2).sum(1) + 2 * std**2 + eig.sum(1) - 2 * std * eig.sqrt().sum(1)
    return {
        "pct_high_quality": 100 * float(good.double().mean()),
        "pct_recovered_modes": 100 * float(good.any(1).double().mean()),
        "w2": float(w2.mean()),
        "w2_std": float(w2.std()) if len(w2) > 1 else 0.0,
    }


def label_score(pred: Tensor, y: Tensor) -> tuple[float, float]:
    """Mean and std of |pred - y| (label units): CcGAN's Label Score when pred comes from an
    evaluation regressor applied to fakes generated at y."""
    err = (pred.double().view(-1) - y.double().view(-1)).abs()
    return float(err.mean()), float(err.std()) if len(err) > 1 else 0.0


def diversity(pred_attr: Tensor, labels: Tensor) -> float:
    """Mean over distinct labels of the entropy (nats) of the predicted attribute classes among
    that label's fakes; 0 when every fake at a label is predicted the same, ln k for k equally
    frequent classes."""
    values = []
    for lab in torch.unique(labels):
        counts = torch.bincount(pred_attr[labels == lab]).double()
        p = counts[counts > 0] / counts.sum()
        values.append(float(-(p * p.log()).sum()))
    return sum(values) / len(values)


def label_bins(y: Tensor, lo: float, hi: float, n_bins: int) -> Tensor:
    """Index of each label among n_bins equal-width bins over [lo, hi] (hi in the last bin;
    values outside are clamped into the end bins)."""
    if n_bins < 1 or not hi > lo:
        raise ValueError(f"need n_bins >= 1 and hi > lo, got {n_bins}, [{lo}, {hi}]")
    return ((y.double() - lo) / (hi - lo) * n_bins).floor().long().clamp(0, n_bins - 1)


def binned_fid(feature_model: nn.Module, real: Tensor, real_y: Tensor, fake: Tensor, fake_y: Tensor, lo: float, hi: float, n_bins: int, batch_size: int = 256) -> dict[str, float]:
    """FID over all images, and intra-FID: the mean FID within label bins (bins with >= 2 real and
    >= 2 fake images), both on `feature_model.features` (computed once)."""
    real_f = _features(feature_model, real, batch_size)
    fake_f = _features(feature_model, fake, batch_size)
    overall = frechet_distance(*_stats(real_f), *_stats(fake_f))
    intra, per_bin = intra_fid(_Given(), real_f, label_bins(real_y, lo, hi, n_bins), fake_f, label_bins(fake_y, lo, hi, n_bins), batch_size)
    return {"fid": overall, "intra_fid": intra, "n_bins_used": len(per_bin)}


class _Given(nn.Module):
    """Features that are already computed."""

    def features(self, x: Tensor) -> Tensor:
        return x
