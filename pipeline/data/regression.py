"""The in-memory dataset type for a continuous scalar label (CcGAN-style regression data)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor

_SPLITS = ("train", "test", "val")
_Num = TypeVar("_Num", Tensor, float)


@dataclass(frozen=True, kw_only=True)
class RegressionDataset:
    """Samples with a continuous scalar label (e.g. a yaw angle) and an optional integer attribute.

    ``x_*`` are float32, either images ``(N, C, H, W)`` in ``[-1, 1]`` or points ``(N, D)`` (e.g. the circle
    simulation). ``y_*`` are float32 ``(N,)`` labels in the ORIGINAL units, inside ``[label_min, label_max]``, the range
    :meth:`normalise` maps to ``[0, 1]``. ``attr_*`` are int64 ``(N,)`` values of a second attribute in
    ``0..num_attr-1`` (e.g. the chair model), ``-1`` where unknown; left out (``None``) they are all ``-1``.
    The validation split (carved from training data, never from test) may be empty, and so may the test split.
    Shapes, dtypes and ranges are checked on construction (``ValueError``). Arguments are keyword-only.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    x_val: Tensor | None = None
    y_val: Tensor | None = None
    attr_train: Tensor | None = None
    attr_test: Tensor | None = None
    attr_val: Tensor | None = None
    num_attr: int = 0
    label_min: float
    label_max: float
    label_name: str

    def __post_init__(self) -> None:
        if self.x_train.dim() not in (2, 4) or self.x_train.dtype != torch.float32:
            raise ValueError(
                f"x_train must be float32 (N, C, H, W) or (N, D), got {self.x_train.dtype} {tuple(self.x_train.shape)}"
            )
        self._fill_empty_and_missing()
        for split in _SPLITS:
            self._check_split(split)
        if self.num_attr < 0:
            raise ValueError(f"num_attr must be >= 0, got {self.num_attr}")
        if not (math.isfinite(self.label_min) and math.isfinite(self.label_max) and self.label_min < self.label_max):
            raise ValueError(f"need finite label_min < label_max, got {self.label_min} and {self.label_max}")
        if not isinstance(self.label_name, str) or not self.label_name:
            raise ValueError("label_name must be a non-empty string")
        self._check_ranges()

    def _fill_empty_and_missing(self) -> None:
        """Give empty splits the sample shape of the training split and missing attributes the value -1."""
        sample_shape = self.x_train.shape[1:]
        if self.y_val is None:
            object.__setattr__(self, "y_val", torch.empty(0, dtype=torch.float32))
        for split in ("test", "val"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x is None or (y is not None and not len(y) and not len(x)):
                object.__setattr__(self, f"x_{split}", torch.empty(0, *sample_shape))
        for split in _SPLITS:
            if getattr(self, f"attr_{split}") is None:
                n = len(getattr(self, f"x_{split}"))
                object.__setattr__(self, f"attr_{split}", torch.full((n,), -1, dtype=torch.int64))

    def _check_split(self, split: str) -> None:
        """Dtypes and shapes of one split's x, y and attr."""
        x, y, attr = (getattr(self, f"{kind}_{split}") for kind in ("x", "y", "attr"))
        if x.dtype != torch.float32 or x.shape[1:] != self.x_train.shape[1:]:
            raise ValueError(
                f"x_{split} must be float32 (N, {', '.join(map(str, self.x_train.shape[1:]))}) like x_train, "
                f"got {x.dtype} {tuple(x.shape)}"
            )
        if y.dtype != torch.float32 or y.dim() != 1 or len(y) != len(x):
            raise ValueError(f"y_{split} must be float32 (N,) matching x_{split}, got {y.dtype} {tuple(y.shape)}")
        if attr.dtype != torch.int64 or attr.dim() != 1 or len(attr) != len(x):
            raise ValueError(
                f"attr_{split} must be int64 (N,) matching x_{split}, got {attr.dtype} {tuple(attr.shape)}"
            )

    def _check_ranges(self) -> None:
        """Labels finite and inside [label_min, label_max]; attributes in -1..num_attr-1."""
        slack = 1e-5 * (self.label_max - self.label_min)  # float32 labels vs float64 bounds
        for split in _SPLITS:
            y, attr = getattr(self, f"y_{split}"), getattr(self, f"attr_{split}")
            if not len(y):
                continue
            if not bool(torch.isfinite(y).all()):
                raise ValueError(f"y_{split} has non-finite labels")
            lo, hi = float(y.min()), float(y.max())
            if lo < self.label_min - slack or hi > self.label_max + slack:
                raise ValueError(
                    f"y_{split} spans [{lo:g}, {hi:g}], outside label range [{self.label_min:g}, {self.label_max:g}]"
                )
            if int(attr.min()) < -1 or int(attr.max()) >= self.num_attr:
                raise ValueError(f"attr_{split} has values outside -1..{self.num_attr - 1}")

    # --- labels -------------------------------------------------------------------------------------------------

    def normalise(self, y: _Num) -> _Num:
        """Map labels in original units to ``[0, 1]``: ``(y - label_min) / (label_max - label_min)``."""
        return (y - self.label_min) / (self.label_max - self.label_min)

    def denormalise(self, u: _Num) -> _Num:
        """Inverse of :meth:`normalise`: ``label_min + u * (label_max - label_min)``."""
        return self.label_min + u * (self.label_max - self.label_min)

    # --- samples ------------------------------------------------------------------------------------------------

    @property
    def is_image(self) -> bool:
        """True for images ``(N, C, H, W)``, False for points ``(N, D)``."""
        return self.x_train.dim() == 4

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(C, H, W)`` or ``(D,)``."""
        return tuple(self.x_train.shape[1:])

    @property
    def channels(self) -> int:
        """Number of image channels (images only)."""
        self._require_images("channels")
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        """Image height (images are square; images only)."""
        self._require_images("image_size")
        return int(self.x_train.shape[2])

    def all_splits(self, kind: str) -> Tensor:
        """``x``, ``y`` or ``attr`` of every sample: train, validation, then test (e.g. for the evaluation nets,
        which are trained on every real image)."""
        return torch.cat([getattr(self, f"{kind}_{split}") for split in ("train", "val", "test")])

    def _require_images(self, what: str) -> None:
        if not self.is_image:
            raise ValueError(f"{what} is only defined for image data, this dataset holds points {self.sample_shape}")
