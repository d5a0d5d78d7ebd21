"""Unpaired image translation data (CycleGAN): two domains A and B, each with its own images.

Built in: ``chair_styles``, the rendered chairs (pipeline/data/chairs.py) in two styles. Domain A
is the shaded rendering (light chair on a black background); domain B is a line drawing of the
same kind of scene (dark outlines and creases on a white background). The two sides show
different chair models at independently drawn yaw angles, so nothing is paired; the angles are
kept so that a translation's pose can be measured.

Users' data: the reference CycleGAN layout, a root with ``trainA/``, ``trainB/``, ``testA/`` and
``testB/`` folders of images (any size; resized to a square). These carry no labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.data.chairs import render_chairs
from pipeline.data.core import DATASET_FILE
from pipeline.errors import DataError
from pipeline.utils import save_torch

SPLITS = ("trainA", "trainB", "testA", "testB")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_FORMAT = "cgankd-translation-v1"
_FIELDS = ("a_train", "b_train", "a_test", "b_test")


def _empty() -> Tensor:
    return torch.zeros(0, dtype=torch.float32)


@dataclass(frozen=True)
class TranslationDataset:
    """Images of two domains, float32 ``(N, C, S, S)`` in [-1, 1], one channel count for both.

    ``label_*`` (float32 ``(N,)``, e.g. the chair's yaw in degrees) go with each split's images when
    the data set knows them, else they are empty; a translation should keep that label.
    """

    a_train: Tensor
    b_train: Tensor
    a_test: Tensor
    b_test: Tensor
    label_a_train: Tensor = field(default_factory=_empty)
    label_b_train: Tensor = field(default_factory=_empty)
    label_a_test: Tensor = field(default_factory=_empty)
    label_b_test: Tensor = field(default_factory=_empty)
    label_name: str = ""
    label_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        shape = tuple(self.a_train.shape[1:])
        for name in _FIELDS:
            x = getattr(self, name)
            if x.dtype != torch.float32 or x.dim() != 4 or tuple(x.shape[1:]) != shape or x.shape[2] != x.shape[3]:
                raise ValueError(f"{name} must be float32 (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
            if not len(x):
                raise ValueError(f"{name} has no images")
            labels = getattr(self, f"label_{name}")
            if len(labels) not in (0, len(x)):
                raise ValueError(f"label_{name} has {len(labels)} labels for {len(x)} images")
        if self.has_labels and not all(len(getattr(self, f"label_{n}")) for n in _FIELDS):
            raise ValueError("give labels for every split or for none")

    @property
    def has_labels(self) -> bool:
        return bool(len(self.label_a_train))

    @property
    def channels(self) -> int:
        return int(self.a_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.a_train.shape[2])

    def normalise(self, labels: Tensor) -> Tensor:
        """Labels mapped from label_range to [0, 1]."""
        lo, hi = self.label_range
        return (labels - lo) / (hi - lo)


# --- built in: chairs, shaded (A) and drawn (B) -----------------------------------------------------------------


def line_drawing(shaded: Tensor, strength: float = 2.0) -> Tensor:
    """A line drawing of shaded renderings ``(N, 1, S, S)`` in [-1, 1]: dark lines where the brightness
    changes (the outline against the background and the creases between faces lit differently) on a
    white background. The line darkness is the Sobel gradient magnitude times ``strength``, clipped."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
    kernels = torch.stack([kx, kx.T]).unsqueeze(1)
    g = F.conv2d(F.pad(shaded, (1, 1, 1, 1), mode="replicate"), kernels)
    ink = (g.pow(2).sum(1, keepdim=True).sqrt() * strength).clamp(0.0, 1.0)
    return 1.0 - 2.0 * ink


def _chairs(n: int, first_model: int, n_models: int, image_size: int, seed: int, stream: int) -> tuple[Tensor, Tensor]:
    """n shaded renderings of models first_model .. first_model + n_models - 1 at yaws uniform in [0, 90)."""
    rng = np.random.default_rng([seed, stream, 0xC7C1E])
    angles = rng.uniform(0.0, 90.0, n)
    models = first_model + rng.integers(0, n_models, n)
    return render_chairs(angles, models, image_size, seed), torch.from_numpy(angles.astype(np.float32))


def load_chair_styles(
    image_size: int = 32, n_models: int = 10, n_train: int = 1000, n_test: int = 200, seed: int = 0
) -> TranslationDataset:
    """The built-in pair: A = shaded chairs of models 0..n_models-1, B = line drawings of the other
    models n_models..2 n_models-1; every image at its own yaw drawn uniformly in [0, 90) degrees
    (labels: those yaws). Train and test draw their yaws independently. Deterministic in ``seed``."""
    if n_models < 1 or n_train < 1 or n_test < 1:
        raise ValueError(f"n_models, n_train and n_test must be >= 1, got {n_models}, {n_train}, {n_test}")
    parts = {}
    for stream, (name, n, first) in enumerate(
        [("a_train", n_train, 0), ("b_train", n_train, n_models), ("a_test", n_test, 0), ("b_test", n_test, n_models)]
    ):
        if name.startswith("a"):
            parts[name], angles = _chairs(n, first, n_models, image_size, seed, stream)
        else:  # drawn at twice the size, then area-averaged down: thin, anti-aliased lines
            x, angles = _chairs(n, first, n_models, 2 * image_size, seed, stream)
            parts[name] = F.avg_pool2d(line_drawing(x), 2)
        parts[f"label_{name}"] = angles
    return TranslationDataset(**parts, label_name="yaw angle (degrees)", label_range=(0.0, 90.0))


# --- users' data: trainA/ trainB/ testA/ testB/ ---------------------------------------------------------------------


def image_files(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: Path, image_size: int, channels: int) -> Tensor:
    """One image file as float32 ``(channels, S, S)`` in [-1, 1] (grey or RGB, resized to a square,
    bicubic); an unreadable file is a one-line DataError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as f:
            im = f.convert("L" if channels == 1 else "RGB").resize((image_size, image_size), Image.Resampling.BICUBIC)
            pixels = np.asarray(im, dtype=np.float32)
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"{path}: not a readable image ({type(err).__name__})") from None
    x = torch.from_numpy(pixels / 127.5 - 1.0)
    return x.unsqueeze(0) if channels == 1 else x.permute(2, 0, 1).contiguous()


def read_images(paths: list[Path], image_size: int, channels: int) -> Tensor:
    return torch.stack([read_image(p, image_size, channels) for p in paths])


def load_image_folders(root: Path, image_size: int = 64, channels: int = 3) -> TranslationDataset:
    """The CycleGAN folder layout under ``root``: trainA/, trainB/, testA/, testB/, each holding image
    files. A missing or empty folder is a one-line DataError naming it."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data root not found (expected the folders {', '.join(SPLITS)})")
    parts: dict[str, Tensor] = {}
    for split, name in zip(SPLITS, ("a_train", "b_train", "a_test", "b_test"), strict=True):
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found (a translation data set has {', '.join(SPLITS)})")
        files = image_files(folder)
        if not files:
            raise DataError(f"{folder}: no images in it ({', '.join(IMAGE_SUFFIXES)})")
        parts[name] = read_images(files, image_size, channels)
    return TranslationDataset(parts["a_train"], parts["b_train"], parts["a_test"], parts["b_test"])


# --- on disk ------------------------------------------------------------------------------------------------------


def save_translation(ds: TranslationDataset, directory: Path) -> None:
    """``directory/dataset.pt``, atomically."""
    payload: dict = {name: getattr(ds, name).contiguous() for name in _FIELDS}
    payload |= {f"label_{n}": getattr(ds, f"label_{n}").contiguous() for n in _FIELDS}
    payload |= {"format": _FORMAT, "label_name": ds.label_name, "label_range": list(ds.label_range)}
    save_torch(payload, Path(directory) / DATASET_FILE)


def load_translation(directory: Path) -> TranslationDataset:
    path = Path(directory) / DATASET_FILE
    if not path.is_file():
        raise DataError(f"{path}: translation data not found (run the prepare stage first)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError("not a translation data set")
        lo, hi = payload["label_range"]
        tensors = {k: payload[k] for k in (*_FIELDS, *(f"label_{n}" for n in _FIELDS))}
        return TranslationDataset(**tensors, label_name=payload["label_name"], label_range=(float(lo), float(hi)))
    except Exception as err:
        raise DataError(f"{path}: unreadable translation data ({type(err).__name__}: {err})") from None
