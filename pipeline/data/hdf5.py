"""RC-49, UTKFace and Steering Angle from local HDF5 files in the CcGAN reference code's layout (nothing is downloaded).

Each file ``<prefix>_<S>x<S>.h5`` holds ``images`` (uint8 ``(N, C, S, S)``, channels first) and ``labels`` (``(N,)``);
RC-49 files also hold ``types`` (the chair model of each image) and usually ``indx_train`` (the reference training
subset). Labels stay in their original units; images are scaled to ``[-1, 1]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from pipeline.data.core import resize, to_unit_range
from pipeline.data.regression import RegressionDataset
from pipeline.errors import DataError

SetName = Literal["rc49", "utkface", "steering_angle"]


@dataclass(frozen=True)
class _Source:
    """One supported HDF5 data set: file name, keys and label conventions."""

    title: str
    prefix: str  # file name is f"{prefix}_{size}x{size}.h5"
    label_name: str
    label_floor: float  # label_min is at most this (0: labels normalised by their maximum, as the reference does)
    label_ceiling: float  # label_max is at least this
    attr_key: str | None = None
    default_max_per_label: int | None = None

    def file_name(self, size: int) -> str:
        return f"{self.prefix}_{size}x{size}.h5"

    def expected(self, root: Path, size: int) -> str:
        keys = f"images uint8 (N, C, {size}, {size}), labels (N,)"
        if self.attr_key:
            keys += f", {self.attr_key} (N,) int"
        return (
            f"expected {root / self.file_name(size)} (HDF5 with datasets {keys}, as in the CcGAN reference code; "
            f"any <size>x<size> version is resized; nothing is downloaded)"
        )


SOURCES: dict[str, _Source] = {
    "rc49": _Source("RC-49", "RC-49", "yaw angle (degrees)", 0.0, 90.0, attr_key="types", default_max_per_label=25),
    "utkface": _Source("UTKFace", "UTKFace", "age (years)", 0.0, 60.0),
    "steering_angle": _Source("Steering Angle", "SteeringAngle", "steering angle (degrees)", 0.0, 0.0),
}


def load_hdf5_regression(
    name: SetName,
    root: Path,
    image_size: int = 64,
    *,
    train_fraction: float = 0.8,
    train_angle_fraction: float = 0.5,
    max_per_label: int | None | Literal["auto"] = "auto",
    val_fraction: float = 0.1,
    seed: int = 0,
) -> RegressionDataset:
    """Load ``name`` from ``root/<prefix>_<image_size>x<image_size>.h5`` as a :class:`RegressionDataset`.

    If that file is missing but another size of the same set is in ``root``, the nearest larger one (else the
    largest) is read and bilinearly resized. Splits (deterministic for ``seed``):

    * ``rc49``: RC-49 style, by angle. Training angles are those of the file's ``indx_train`` images if present,
      else a random ``train_angle_fraction`` of the distinct angles; each keeps at most ``max_per_label`` images
      (default 25, as in the reference). Every image at another angle is a test image. Attribute = ``types``.
    * ``utkface`` and ``steering_angle``: a random ``train_fraction`` of the images is the training split (at most
      ``max_per_label`` per distinct label; default: no limit), the rest is the test split. No attribute.

    The validation split is ``val_fraction`` of the kept training images (at least one when > 0), never from test.
    Label ranges: RC-49 ``[0, 90]``, UTKFace ``[0, 60]`` (widened if the labels exceed them), Steering Angle
    ``[min(0, smallest), largest]`` so normalised labels match the reference's shift-and-divide.
    Missing or malformed files raise a one-line ``DataError`` naming the path and the expected layout.
    """
    source = SOURCES.get(name)
    if source is None:
        raise DataError(f"unknown HDF5 data set {name!r}: expected one of {', '.join(SOURCES)}")
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    if not 0.0 < train_fraction <= 1.0 or not 0.0 < train_angle_fraction <= 1.0:
        raise ValueError(f"train fractions must be in (0, 1], got {train_fraction} and {train_angle_fraction}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    cap = source.default_max_per_label if max_per_label == "auto" else max_per_label
    if cap is not None and cap < 1:
        raise ValueError(f"max_per_label must be >= 1 or None, got {cap}")

    root = Path(root)
    path = _find_file(source, root, image_size)
    data = _read(source, root, path, image_size)
    labels = data["labels"]
    rng = np.random.default_rng(seed)
    if source.attr_key:
        train, test = _split_by_label(labels, data.get("indx_train"), train_angle_fraction, rng)
    else:
        train, test = _split_by_image(len(labels), train_fraction, rng)
    train = _cap_per_label(train, labels, cap, rng)
    train, val = _carve_val(train, val_fraction, rng)
    try:
        return _dataset(source, data, {"train": train, "test": test, "val": val}, image_size)
    except ValueError as exc:  # e.g. all labels equal: no label range to normalise by
        raise DataError(
            f"{source.title} file {path} is inconsistent ({exc}): {source.expected(root, image_size)}"
        ) from exc


# --- files --------------------------------------------------------------------------------------------------------


def _find_file(source: _Source, root: Path, image_size: int) -> Path:
    """The file for ``image_size``, else the nearest larger size present, else the largest present."""
    exact = root / source.file_name(image_size)
    if exact.is_file():
        return exact
    pattern = re.compile(rf"{re.escape(source.prefix)}_(\d+)x\1\.h5")
    sizes = sorted(
        int(m.group(1)) for p in (root.iterdir() if root.is_dir() else ()) if (m := pattern.fullmatch(p.name))
    )
    if not sizes:
        raise DataError(f"{source.title} not found: {source.expected(root, image_size)}")
    larger = [s for s in sizes if s >= image_size]
    return root / source.file_name(larger[0] if larger else sizes[-1])


def _read(source: _Source, root: Path, path: Path, image_size: int) -> dict[str, np.ndarray]:
    """All datasets the loader needs, checked for shape and dtype; problems become one-line ``DataError``s."""
    import h5py  # lazy: only needed for these files

    def fail(problem: str) -> DataError:
        return DataError(f"{source.title} file {path} {problem}: {source.expected(root, image_size)}")

    try:
        with h5py.File(path, "r") as f:
            keys = sorted(f.keys())
            required = ["images", "labels"] + ([source.attr_key] if source.attr_key else [])
            for key in required:
                if key not in keys:
                    raise fail(f"has no dataset {key!r} (found: {', '.join(keys) or 'none'})")
            data = {key: np.asarray(f[key][()]) for key in required}
            if source.attr_key and "indx_train" in keys:
                data["indx_train"] = np.asarray(f["indx_train"][()])
    except DataError:
        raise
    except Exception as exc:  # not HDF5, truncated, unreadable: h5py raises OSError and others
        raise fail(f"cannot be read ({' '.join(f'{type(exc).__name__}: {exc}'.split())})") from exc
    _check(data, fail)
    return data


def _check(data: dict[str, np.ndarray], fail: Callable[[str], DataError]) -> None:
    """Validate and normalise the arrays in place (labels float64 (N,), attributes int64 (N,))."""
    images = data["images"]
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[2] != images.shape[3]:
        raise fail(f"has images of shape {images.shape}, not (N, C, S, S) with C = 1 or 3 (channels first)")
    if images.dtype != np.uint8:
        raise fail(f"has images of dtype {images.dtype}, not uint8")
    n = len(images)
    for key in [k for k in data if k not in ("images", "indx_train")]:
        values = data[key].reshape(len(data[key]), -1) if data[key].ndim else data[key]
        if values.ndim != 2 or values.shape[1] != 1 or len(values) != n:
            raise fail(f"has {n} images but {key!r} has shape {data[key].shape}, not ({n},)")
        data[key] = values[:, 0]
    data["labels"] = data["labels"].astype(np.float64)
    if not np.isfinite(data["labels"]).all():
        raise fail("has non-finite labels")
    for key in [k for k in data if k not in ("images", "labels")]:
        values = data[key].reshape(-1)
        if not np.issubdtype(values.dtype, np.integer) or (len(values) and values.min() < 0):
            raise fail(f"has {key!r} that are not non-negative integers")
        if key == "indx_train" and len(values) and values.max() >= n:
            raise fail(f"has 'indx_train' entries beyond its {n} images")
        data[key] = values.astype(np.int64)


# --- splits -------------------------------------------------------------------------------------------------------


def _split_by_label(
    labels: np.ndarray, indx_train: np.ndarray | None, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Images at training labels (those of ``indx_train``, else a random fraction of the distinct
    labels) vs. the rest."""
    distinct = np.unique(labels)
    if indx_train is not None and len(indx_train):
        train_labels = np.unique(labels[indx_train])
    else:
        train_labels = np.sort(rng.permutation(distinct)[: max(1, round(fraction * len(distinct)))])
    is_train = np.isin(labels, train_labels)
    return np.nonzero(is_train)[0], np.nonzero(~is_train)[0]


def _split_by_image(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random ``fraction`` of the images (at least one) vs. the rest, each in file order."""
    order = rng.permutation(n)
    n_train = max(1, round(fraction * n))
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def _cap_per_label(idx: np.ndarray, labels: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most ``cap`` random images of each distinct label among ``idx`` (all for ``None``), in file order."""
    if cap is None:
        return idx
    kept = [group if len(group) <= cap else rng.permutation(group)[:cap] for group in _groups(idx, labels[idx])]
    return np.sort(np.concatenate(kept)) if kept else idx


def _groups(idx: np.ndarray, keys: np.ndarray) -> list[np.ndarray]:
    """``idx`` grouped by equal ``keys`` (groups in key order, members in their original order)."""
    order = np.argsort(keys, kind="stable")
    _, starts = np.unique(keys[order], return_index=True)
    return np.split(idx[order], starts[1:])


def _carve_val(train: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Move ``fraction`` of the training images (at least one if > 0, never all) to a validation split."""
    n_val = min(max(1, round(fraction * len(train))) if fraction > 0 else 0, max(0, len(train) - 1))
    is_val = np.zeros(len(train), dtype=bool)
    is_val[rng.permutation(len(train))[:n_val]] = True
    return train[~is_val], train[is_val]


def _dataset(
    source: _Source, data: dict[str, np.ndarray], splits: dict[str, np.ndarray], image_size: int
) -> RegressionDataset:
    """Build the RegressionDataset: images to [-1, 1] at ``image_size``, labels float32, attributes int64."""
    labels = data["labels"]
    label_min = min(source.label_floor, float(labels.min()))
    label_max = max(source.label_ceiling, float(labels.max()))
    attr = data.get(source.attr_key) if source.attr_key else None
    fields: dict[str, torch.Tensor] = {}
    for split, idx in splits.items():
        images = torch.from_numpy(np.ascontiguousarray(data["images"][idx]))
        fields[f"x_{split}"] = resize(to_unit_range(images, 255.0), image_size).contiguous()
        fields[f"y_{split}"] = torch.from_numpy(labels[idx].astype(np.float32))
        if attr is not None:
            fields[f"attr_{split}"] = torch.from_numpy(attr[idx])
    num_attr = int(attr.max()) + 1 if attr is not None and len(attr) else 0
    return RegressionDataset(
        **fields, num_attr=num_attr, label_min=label_min, label_max=label_max, label_name=source.label_name
    )
