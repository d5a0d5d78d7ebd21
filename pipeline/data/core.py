"""The in-memory dataset type, per-class subsampling and the on-disk ``dataset.pt`` format."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.data.regression import RegressionDataset
from pipeline.errors import DataError
from pipeline.utils import save_torch

DATASET_FILE = "dataset.pt"
_FORMAT_VERSION = 1
_TENSOR_FIELDS = ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val")
_ATTR_FIELDS = ("attr_train", "attr_test", "attr_val")


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image classification dataset held in memory.

    Images are float32 ``(N, C, H, W)`` with values in ``[-1, 1]``; labels are int64 ``(N,)`` class ids in
    ``0..num_classes-1``. Shapes and dtypes are checked on construction (``ValueError``).
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    class_names: tuple[str, ...]
    # validation images carved from the training split (never from test); may be empty
    x_val: Tensor = field(default_factory=lambda: torch.empty(0, 1, 1, 1))
    y_val: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))

    def __post_init__(self) -> None:
        if self.num_classes < 1 or len(self.class_names) != self.num_classes:
            raise ValueError(f"num_classes={self.num_classes} but {len(self.class_names)} class names given")
        if not len(self.y_val):  # an empty validation split takes the image shape of the others
            object.__setattr__(self, "x_val", torch.empty(0, *self.x_train.shape[1:]))
        for split in ("train", "test", "val"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != torch.float32 or x.dim() != 4:
                raise ValueError(f"x_{split} must be float32 (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.dim() != 1 or len(y) != len(x):
                raise ValueError(f"y_{split} must be int64 (N,) matching x_{split}, got {y.dtype} {tuple(y.shape)}")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(f"y_{split} has labels outside 0..{self.num_classes - 1}")
        if not self.x_train.shape[1:] == self.x_test.shape[1:] == self.x_val.shape[1:]:
            raise ValueError(
                f"train images {tuple(self.x_train.shape[1:])} != test images {tuple(self.x_test.shape[1:])}"
            )

    @property
    def channels(self) -> int:
        """Number of image channels (1 for grey-scale, 3 for RGB)."""
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        """Image height (images are square)."""
        return int(self.x_train.shape[2])


def to_unit_range(images: Tensor, max_value: float) -> Tensor:
    """Map values in ``[0, max_value]`` linearly to float32 ``[-1, 1]``."""
    return images.to(torch.float32) * (2.0 / max_value) - 1.0


def resize(images: Tensor, image_size: int | None) -> Tensor:
    """Bilinearly resize ``(N, C, H, W)`` images to ``image_size`` x ``image_size`` (no-op for ``None``
    or the same size)."""
    if image_size is None or tuple(images.shape[-2:]) == (image_size, image_size):
        return images
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    out = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return out.clamp_(-1.0, 1.0)


def limit_per_class(
    x: Tensor,
    y: Tensor,
    fraction: float | None = None,
    n_per_class: int | None = None,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Keep a random subset of each class, in the original order.

    Exactly one of ``fraction`` (keeps ``round(fraction * n_c)``, halves rounded up) or ``n_per_class`` (keeps
    ``min(n_per_class, n_c)``) must be given; at least one image of every present class is kept.
    Deterministic for a given ``seed``.
    """
    if (fraction is None) == (n_per_class is None):
        raise ValueError("give exactly one of fraction or n_per_class")
    if fraction is not None and not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if n_per_class is not None and n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    if y.dim() != 1 or len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {tuple(x.shape)} and {tuple(y.shape)}")

    keep = per_class_indices(y, fraction, n_per_class, seed)
    return x[keep], y[keep]


def per_class_indices(
    y: Tensor, fraction: float | None = None, n_per_class: int | None = None, seed: int = 0
) -> Tensor:
    """Sorted indices of the subset that :func:`limit_per_class` keeps."""
    generator = torch.Generator().manual_seed(seed)
    kept = []
    for cls in torch.unique(y):
        idx = torch.nonzero(y == cls).squeeze(1)
        n = len(idx)
        k = min(n_per_class, n) if n_per_class is not None else math.floor(fraction * n + 0.5)  # type: ignore[operator]
        kept.append(idx[torch.randperm(n, generator=generator)[: max(1, k)]])
    return torch.sort(torch.cat(kept)).values if kept else torch.zeros(0, dtype=torch.long)


def _compact(t: Tensor) -> Tensor:
    """A tensor owning exactly its own storage (torch.save writes a view's whole storage)."""
    t = t.contiguous()
    return t.clone() if t.untyped_storage().nbytes() != t.nbytes else t


def save_dataset(ds: ImageDataset | RegressionDataset, directory: Path) -> None:
    """Write ``directory/dataset.pt`` atomically (temp file in the same directory, then ``os.replace``).

    The file records its ``kind`` ("classification" or "regression"); :func:`load_dataset` returns the same type.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {name: _compact(getattr(ds, name)) for name in _TENSOR_FIELDS}
    payload["format_version"] = _FORMAT_VERSION
    if isinstance(ds, RegressionDataset):
        payload |= {name: _compact(getattr(ds, name)) for name in _ATTR_FIELDS}
        payload |= {
            "kind": "regression",
            "num_attr": ds.num_attr,
            "label_min": float(ds.label_min),
            "label_max": float(ds.label_max),
            "label_name": ds.label_name,
        }
    else:
        payload |= {"kind": "classification", "num_classes": ds.num_classes, "class_names": list(ds.class_names)}
    save_torch(payload, directory / DATASET_FILE)


def load_dataset(directory: Path) -> ImageDataset | RegressionDataset:
    """Read ``directory/dataset.pt`` written by :func:`save_dataset`; missing or corrupt -> ``DataError``.

    Returns a :class:`RegressionDataset` for files of kind "regression", else an :class:`ImageDataset` (files
    written before the kind was recorded are classification datasets).
    """
    path = Path(directory) / DATASET_FILE
    expected = f"expected {path} written by save_dataset (a dict of x/y train/test tensors, num_classes, class_names)"
    if not path.is_file():
        raise DataError(f"dataset not found: {expected}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file can fail inside torch.load/unpickling with many exception types
        raise DataError(f"dataset file {path} is corrupt ({_one_line(exc)}): {expected}") from exc
    try:
        if not isinstance(payload, dict) or payload.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"not a format-version-{_FORMAT_VERSION} dataset dict")
        kind = payload.get("kind", "classification")
        if kind not in ("classification", "regression"):
            raise ValueError(f"unknown kind {kind!r}")
        tensor_fields = _TENSOR_FIELDS + (_ATTR_FIELDS if kind == "regression" else ())
        if not all(isinstance(payload[name], Tensor) for name in tensor_fields):
            raise ValueError("x/y train/test/val are not all tensors")
        tensors = {name: payload[name] for name in tensor_fields}
        if kind == "regression":
            if not isinstance(payload["label_name"], str):
                raise ValueError("label_name is not a string")
            return RegressionDataset(
                **tensors,
                num_attr=int(payload["num_attr"]),
                label_min=float(payload["label_min"]),
                label_max=float(payload["label_max"]),
                label_name=payload["label_name"],
            )
        names = payload["class_names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("class_names is not a list of strings")
        return ImageDataset(**tensors, num_classes=int(payload["num_classes"]), class_names=tuple(names))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"dataset file {path} is malformed ({_one_line(exc)}): {expected}") from exc


def _one_line(exc: BaseException) -> str:
    """``Type: message`` squeezed onto one line."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def training_label_grid(ds, n: int) -> torch.Tensor:
    """n labels evenly spaced over the training labels' range, normalised as G takes them."""
    return ds.normalise(torch.linspace(float(ds.y_train.min()), float(ds.y_train.max()), n))
