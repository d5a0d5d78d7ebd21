"""Datasets bundled with installed packages (no files, no downloads)."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.data.core import ImageDataset, resize, to_unit_range


def load_digits(image_size: int = 16, test_fraction: float = 0.3, seed: int = 0) -> ImageDataset:
    """scikit-learn's 1797 8x8 hand-written digits as 1-channel ``image_size`` images in ``[-1, 1]``.

    Pixel values 0..16 are scaled to ``[-1, 1]`` and bilinearly resized; the train/test split is stratified by class
    and deterministic for a given ``seed``.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.datasets import load_digits as sklearn_digits  # lazy: importing scikit-learn takes seconds
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    images = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32)).unsqueeze(1)
    x = resize(to_unit_range(images, 16.0), image_size)
    y = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    train_idx, test_idx = train_test_split(
        np.arange(len(y)), test_size=test_fraction, stratify=bunch.target, random_state=seed
    )
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return ImageDataset(
        x_train=x[train_idx].contiguous(),
        y_train=y[train_idx],
        x_test=x[test_idx].contiguous(),
        y_test=y[test_idx],
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
    )
