"""Image-quality metrics: FID / intra-FID on a classifier's features, Inception Score, accuracy, Inception FID.

Images are float tensors (N, C, H, W) in [-1, 1]. A feature model is a classifier with ``forward(x) -> logits``,
``features(x) -> (N, D)`` and an int ``feature_dim``. Models are run in eval mode without gradients; their training
mode is restored afterwards.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import Tensor, nn

from pipeline.errors import DataError
from pipeline.nets.backbone import Backbone
from pipeline.utils import batches, device_of, features_of, predict


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def _check_pair(real: Tensor, fake: Tensor) -> None:
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"FID needs at least 2 real and 2 fake images, got {len(real)} and {len(fake)}")


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64 (same formula as torchmetrics)."""
    mu1, sigma1, mu2, sigma2 = (t.double() for t in (mu1, sigma1, mu2, sigma2))
    sqrt_trace = torch.linalg.eigvals(sigma1 @ sigma2).sqrt().real.sum()
    return float((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * sqrt_trace)


def _stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and unbiased covariance (D, D) of float64 features (N, D)."""
    return features.mean(dim=0), torch.atleast_2d(torch.cov(features.T))


def _features(model: Backbone, x: Tensor, batch_size: int) -> Tensor:
    """(N, D) float64 features, computed on the model's device."""
    _check_batch_size(batch_size)
    return features_of(model, x.to(device_of(model)), batch_size).double().reshape(len(x), -1)


def fid(feature_model: Backbone, real: Tensor, fake: Tensor, batch_size: int = 256) -> float:
    """FID between ``real`` and ``fake`` in the penultimate feature space of ``feature_model``."""
    _check_pair(real, fake)
    return frechet_distance(
        *_stats(_features(feature_model, real, batch_size)), *_stats(_features(feature_model, fake, batch_size))
    )


def intra_fid(
    feature_model: Backbone,
    real: Tensor,
    real_y: Tensor,
    fake: Tensor,
    fake_y: Tensor,
    batch_size: int = 256,
) -> tuple[float, dict[int, float]]:
    """Mean of per-class FIDs over classes with at least 2 real and 2 fake images; returns (mean, {class: fid}).

    Features are computed once for all images; per-class Gaussian statistics are taken from them.
    """
    if len(real) != len(real_y) or len(fake) != len(fake_y):
        raise ValueError("images and labels differ in length")
    real_f = _features(feature_model, real, batch_size)
    fake_f = _features(feature_model, fake, batch_size)
    real_y, fake_y = real_y.to(real_f.device), fake_y.to(fake_f.device)
    per_class: dict[int, float] = {}
    for c in sorted(set(real_y.tolist()) & set(fake_y.tolist())):
        rf, ff = real_f[real_y == c], fake_f[fake_y == c]
        if len(rf) >= 2 and len(ff) >= 2:
            per_class[int(c)] = frechet_distance(*_stats(rf), *_stats(ff))
    if not per_class:
        raise ValueError("no class has at least 2 real and 2 fake images")
    return sum(per_class.values()) / len(per_class), per_class


IS_SPLITS = 10  # the Inception Score as the literature reports it: mean and std over 10 splits


def inception_score(probs: Tensor, splits: int = IS_SPLITS, shuffle: bool = True) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) from class probabilities (N, K); (mean, population std) over
    ``splits`` splits of a fixed random order of the rows (with ``shuffle``; else contiguous), at
    most N splits."""
    if probs.dim() != 2:
        raise ValueError(f"probs must be (N, K), got shape {tuple(probs.shape)}")
    n = len(probs)
    splits = min(splits, n)
    if splits < 1:
        raise ValueError(f"splits must be in [1, {n}], got {splits}")
    # near-equal splits of a fixed random order: fakes come grouped by label, and a split of one
    # class only would score 1 (the global RNG is left alone)
    p = probs.double()
    if shuffle:
        p = p[torch.randperm(n, generator=torch.Generator().manual_seed(0)).to(p.device)]
    split = torch.arange(n, device=p.device) * splits // n
    counts = torch.bincount(split, minlength=splits).double()
    p_y = torch.zeros(splits, p.shape[1], dtype=p.dtype, device=p.device).index_add_(0, split, p) / counts[:, None]
    kl = (torch.xlogy(p, p) - torch.xlogy(p, p_y[split])).sum(dim=1)
    scores = torch.exp(torch.zeros(splits, dtype=p.dtype, device=p.device).index_add_(0, split, kl) / counts)
    return float(scores.mean()), float(scores.std(correction=0))


def classifier_accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    """Fraction of ``x`` that ``model`` classifies as ``y``."""
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need equally many (>0) images and labels, got {len(x)} and {len(y)}")
    _check_batch_size(batch_size)
    device = device_of(model)
    return int((predict(model, x.to(device), batch_size).argmax(dim=1) == y.to(device)).sum()) / len(x)


def inception_fid(
    weights_path: Path,
    real: Tensor,
    fake: Tensor,
    batch_size: int = 64,
    device: torch.device | str | None = None,
) -> float:
    """Standard FID (Inception-v3 pool3, 2048-d) with a local ``pt_inception-2015-12-05`` weights file.

    Never downloads: with a path, torch-fidelity only ``torch.load``s it (checked here to be a plain state dict).
    Grayscale images are repeated to 3 channels and [-1, 1] is mapped to [0, 1] (torchmetrics then quantises to
    uint8 and resizes to 299x299). ``device`` defaults to that of ``real``.
    """
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise DataError(
            f"Inception weights not found: {weights_path} (expected the torch-fidelity "
            "pt_inception-2015-12-05 state-dict file; it is never downloaded automatically)"
        )
    _check_pair(real, fake)
    try:
        # torch-fidelity loads the file with weights_only=False; check first that it is a plain tensor state dict.
        torch.load(weights_path, map_location="cpu", weights_only=True)
        from torchmetrics.image.fid import FrechetInceptionDistance

        metric = FrechetInceptionDistance(
            feature=2048, normalize=True, feature_extractor_weights_path=str(weights_path)
        )
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as e:
        msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise DataError(f"Inception weights file {weights_path} is not a plain InceptionV3 state dict: {msg}") from e
    device = torch.device(device) if device is not None else real.device
    metric = metric.to(device)
    _check_batch_size(batch_size)
    for imgs, is_real in ((real, True), (fake, False)):
        for s in batches(len(imgs), batch_size):
            batch = imgs[s].to(device)
            if batch.shape[1] == 1:
                batch = batch.repeat(1, 3, 1, 1)
            metric.update(((batch.float() + 1) / 2).clamp(0, 1), real=is_real)
    return float(metric.compute())
