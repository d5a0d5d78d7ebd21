"""The CcGAN paper's simulation: 2-D Gaussians whose centres lie on a circle, labelled by the polar angle."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from pipeline.data.regression import RegressionDataset


def circle_centres(angles: Tensor | np.ndarray, radius: float = 1.0) -> Tensor:
    """Centres ``(R sin t, R cos t)`` of the Gaussians at angles ``t`` (radians), as float32 ``(A, 2)``."""
    t = torch.as_tensor(np.asarray(angles, dtype=np.float64))
    return torch.stack([radius * torch.sin(t), radius * torch.cos(t)], dim=1).to(torch.float32)


def circle_angles(n_angles: int, offset: float = 0.0) -> np.ndarray:
    """``n_angles`` equally spaced angles ``2 pi (i + offset) / n_angles`` in ``[0, 2 pi)``, float64."""
    return 2.0 * math.pi * (np.arange(n_angles, dtype=np.float64) + offset) / n_angles


def _draw(
    angles: np.ndarray, per_angle: int, radius: float, std: float, rng: np.random.Generator
) -> tuple[Tensor, Tensor]:
    """``per_angle`` Gaussian draws around each angle's centre (angle-major order) and their float32 labels."""
    labels = np.repeat(angles, per_angle)
    centres = circle_centres(labels, radius).numpy().astype(np.float64)
    points = centres + rng.normal(0.0, std, size=centres.shape)
    return torch.from_numpy(points.astype(np.float32)), torch.from_numpy(labels.astype(np.float32))


def make_circle(
    n_train_angles: int = 120,
    per_angle: int = 10,
    n_eval_angles: int = 360,
    eval_per_angle: int = 100,
    radius: float = 1.0,
    std: float = 0.02,
    seed: int = 0,
) -> RegressionDataset:
    """The circular 2-D Gaussian mixture of the CcGAN paper as point data ``(N, 2)`` labelled by angle (radians).

    Training: ``per_angle`` draws from ``N((R sin t, R cos t), std^2 I)`` at each ``t = 2 pi i / n_train_angles``.
    Test: ``eval_per_angle`` draws at each evaluation angle ``t = 2 pi (i + 0.5) / n_eval_angles``; with the
    defaults (120 and 360) no evaluation angle is a training angle. No validation split; label range ``[0, 2 pi]``.
    Deterministic for a given ``seed``.
    """
    for name, value in (
        ("n_train_angles", n_train_angles),
        ("per_angle", per_angle),
        ("n_eval_angles", n_eval_angles),
        ("eval_per_angle", eval_per_angle),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if radius <= 0 or std < 0:
        raise ValueError(f"need radius > 0 and std >= 0, got radius={radius}, std={std}")
    rng = np.random.default_rng(seed)
    x_train, y_train = _draw(circle_angles(n_train_angles), per_angle, radius, std, rng)
    x_test, y_test = _draw(circle_angles(n_eval_angles, offset=0.5), eval_per_angle, radius, std, rng)
    return RegressionDataset(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_attr=0,
        label_min=0.0,
        label_max=2.0 * math.pi,
        label_name="angle (radians)",
    )
