"""Writers of small HDF5 files in the CcGAN reference code's on-disk layout (RC-49, UTKFace, Steering Angle)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


def write_h5(path: Path, **datasets: np.ndarray) -> Path:
    """One HDF5 file with the given datasets (names as keys)."""
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f.create_dataset(key, data=value)
    return path


def pixels(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """n random uint8 RGB images, channels first (N, 3, size, size)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, size, size), dtype=np.uint8)


def write_rc49(root: Path, n_angles: int = 12, n_types: int = 4, size: int = 64) -> Path:
    """RC-49_<size>x<size>.h5: n_angles yaw angles on the 0.1-degree grid in (0, 90), each seen by n_types chair
    types; `indx_train` holds the images at every other angle (the reference splits by the last decimal)."""
    angles = np.round(np.linspace(4.5, 85.5, n_angles), 1)
    labels = np.repeat(angles, n_types)
    train = np.nonzero(np.isin(labels, angles[::2]))[0]
    return write_h5(
        root / f"RC-49_{size}x{size}.h5",
        images=pixels(len(labels), size),
        labels=labels,
        types=np.tile(np.arange(n_types), n_angles),
        indx_train=train,
    )


def write_utkface(root: Path, n: int = 40, size: int = 64) -> Path:
    """UTKFace_<size>x<size>.h5: n faces with integer ages 1..60."""
    ages = np.random.default_rng(1).integers(1, 61, size=n)
    return write_h5(root / f"UTKFace_{size}x{size}.h5", images=pixels(n, size, seed=1), labels=ages)


def write_steering_angle(root: Path, n: int = 40, size: int = 64) -> Path:
    """SteeringAngle_<size>x<size>.h5: n frames with steering angles in [-80, 80] degrees, labels (N, 1)."""
    angles = np.round(np.random.default_rng(2).uniform(-80, 80, size=n), 2)
    return write_h5(root / f"SteeringAngle_{size}x{size}.h5", images=pixels(n, size, seed=2), labels=angles[:, None])
