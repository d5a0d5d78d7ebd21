"""CIFAR-10/100, MNIST and Fashion-MNIST from local files in torchvision's on-disk layout (nothing is downloaded)."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from pipeline.data.core import ImageDataset, resize, to_unit_range
from pipeline.errors import DataError

_T = TypeVar("_T")
_Splits = tuple[Tensor, Tensor, Tensor, Tensor, tuple[str, ...]]  # x_train (uint8 NCHW), y_train, x_test, y_test, names


@dataclass(frozen=True)
class _Source:
    """One supported dataset: torchvision class, where its files live and how to describe that layout."""

    title: str
    tv_name: str  # class in torchvision.datasets (imported lazily: importing torchvision takes seconds)
    folder: str  # relative to root
    layout: str
    note: str

    @property
    def tv_class(self) -> Any:
        import torchvision.datasets

        return getattr(torchvision.datasets, self.tv_name)

    def expected(self, root: Path) -> str:
        return f"expected {root / self.folder}/{self.layout} ({self.note}; nothing is downloaded)"

    def require(self, root: Path, names: list[str]) -> None:
        for name in names:
            if not (root / self.folder / name).is_file():
                raise DataError(f"{self.title} not found under {root} (no file {name}): {self.expected(root)}")

    def parse(self, root: Path, path: Path, parser: Callable[[Path], _T]) -> _T:
        """Run ``parser(path)``; any failure becomes a one-line ``DataError`` naming the file and the layout."""
        try:
            return parser(path)
        except Exception as exc:  # damaged pickles/idx files can fail with almost any exception type
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise DataError(f"{self.title} file {path} is malformed ({reason}): {self.expected(root)}") from exc


_IDX = "{train-images-idx3-ubyte,train-labels-idx1-ubyte,t10k-images-idx3-ubyte,t10k-labels-idx1-ubyte}"
_IDX_NOTE = "uncompressed big-endian idx files as torchvision {} reads them; gunzip any .gz files"
SOURCES: dict[str, _Source] = {
    "cifar10": _Source(
        "CIFAR-10",
        "CIFAR10",
        "cifar-10-batches-py",
        "{data_batch_1..5,test_batch,batches.meta}",
        "the python version of CIFAR-10, extracted",
    ),
    "cifar100": _Source(
        "CIFAR-100", "CIFAR100", "cifar-100-python", "{train,test,meta}", "the python version of CIFAR-100, extracted"
    ),
    "mnist": _Source("MNIST", "MNIST", "MNIST/raw", _IDX, _IDX_NOTE.format("MNIST")),
    "fashion_mnist": _Source(
        "Fashion-MNIST", "FashionMNIST", "FashionMNIST/raw", _IDX, _IDX_NOTE.format("FashionMNIST")
    ),
}


def load_torchvision(name: str, root: Path, image_size: int | None = None) -> ImageDataset:
    """Load ``name`` (cifar10, cifar100, mnist, fashion_mnist) from ``root`` as images in ``[-1, 1]``.

    The files must already be on disk in torchvision's layout (see ``SOURCES``); missing or malformed files raise a
    one-line ``DataError`` naming the path and the expected layout. ``image_size`` optionally resizes (bilinear).
    """
    source = SOURCES.get(name)
    if source is None:
        raise DataError(f"unknown dataset {name!r}: expected one of {', '.join(SOURCES)}")
    root = Path(root)
    reader = _read_cifar if source.tv_name.startswith("CIFAR") else _read_idx
    x_train, y_train, x_test, y_test, names = reader(source, root)
    try:
        return ImageDataset(
            x_train=resize(to_unit_range(x_train, 255.0), image_size),
            y_train=y_train,
            x_test=resize(to_unit_range(x_test, 255.0), image_size),
            y_test=y_test,
            num_classes=len(names),
            class_names=names,
        )
    except ValueError as exc:  # e.g. labels out of range, train/test image sizes differ
        raise DataError(f"{source.title} under {root} is inconsistent ({exc}): {source.expected(root)}") from exc


# --- CIFAR: python pickles ----------------------------------------------------------------------------------------
# We parse the files ourselves instead of instantiating torchvision's CIFAR classes (but take the file names from
# them): torchvision insists on the md5 sums of the official files, so a subset or re-pickled copy is rejected, and it
# only accepts str keys, while files re-pickled under Python 3 have bytes keys (b"data"). We validate content instead.


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only, so a planted data file cannot run code."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
        *(
            (core, fn)
            for core in ("numpy.core.multiarray", "numpy._core.multiarray")
            for fn in ("_reconstruct", "scalar")
        ),
        *((core, "_frombuffer") for core in ("numpy.core.numeric", "numpy._core.numeric")),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR file")
        return super().find_class(module, name)


def _read_pickle_dict(path: Path) -> dict[str, Any]:
    """A CIFAR pickle as a dict with str keys (Python 2 str keys and Python 3 bytes keys both accepted)."""
    # latin1 decodes the Python 2 str objects of the official files (numpy array buffers included) losslessly.
    with path.open("rb") as f:
        obj = _ArrayUnpickler(f, encoding="latin1").load()
    if not isinstance(obj, dict):
        raise ValueError(f"expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_cifar(source: _Source, root: Path) -> _Splits:
    cls = source.tv_class
    folder = root / source.folder
    label_key = "labels" if source.tv_name == "CIFAR10" else "fine_labels"

    def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
        entry = _read_pickle_dict(path)
        data = np.asarray(entry["data"])
        labels = np.asarray(entry[label_key], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
        if labels.shape != (len(data),):
            raise ValueError(f"'{label_key}' must hold {len(data)} labels, got shape {labels.shape}")
        return data, labels

    def read_names(path: Path) -> tuple[str, ...]:
        names = _read_pickle_dict(path)[cls.meta["key"]]
        return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)

    def read_split(file_list: list[list[str]]) -> tuple[Tensor, Tensor]:
        batches = [source.parse(root, folder / fname, read_batch) for fname, _md5 in file_list]
        data = np.concatenate([d for d, _ in batches]).reshape(-1, 3, 32, 32)
        return torch.from_numpy(data), torch.from_numpy(np.concatenate([lab for _, lab in batches]))

    source.require(root, [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]])
    x_train, y_train = read_split(cls.train_list)
    x_test, y_test = read_split(cls.test_list)
    names = source.parse(root, folder / cls.meta["filename"], read_names)
    return x_train, y_train, x_test, y_test, names


# --- MNIST / Fashion-MNIST: idx files, read by torchvision --------------------------------------------------------


def _check_idx(path: Path, ndim: int) -> None:
    """Validate an unsigned-byte idx header (magic 0x0000080<ndim>, big-endian sizes) against the file size.

    torchvision's reader only ``assert``s on the header and does not check the size, so a bad file would surface as
    an AssertionError or a confusing reshape error (or be silently misread under ``python -O``).
    """
    with path.open("rb") as f:
        header = f.read(4 * (ndim + 1))
    if len(header) != 4 * (ndim + 1):
        raise ValueError("file shorter than its idx header")
    magic = int.from_bytes(header[:4], "big")
    if magic != 0x0800 + ndim:
        raise ValueError(f"bad magic number 0x{magic:08x}, expected 0x{0x0800 + ndim:08x}")
    dims = [int.from_bytes(header[4 * i : 4 * i + 4], "big") for i in range(1, ndim + 1)]
    if ndim == 3 and dims[1] != dims[2]:
        raise ValueError(f"images must be square, got {dims[1]}x{dims[2]}")
    expected = len(header) + math.prod(dims)
    if path.stat().st_size != expected:
        raise ValueError(f"size {path.stat().st_size} bytes, expected {expected} for dims {dims}")


def _read_idx(source: _Source, root: Path) -> _Splits:
    cls = source.tv_class
    folder = root / source.folder
    # torchvision reads root/<ClassName>/raw/<resource name without .gz>; .gz files are only used when downloading.
    files = [Path(url).stem for url, _md5 in cls.resources]
    source.require(root, files)
    for fname in files:
        source.parse(root, folder / fname, lambda p: _check_idx(p, 3 if "images" in p.name else 1))

    def read_split(train: bool) -> tuple[Tensor, Tensor]:
        images = folder / f"{'train' if train else 't10k'}-images-idx3-ubyte"
        ds = source.parse(root, images, lambda _: cls(str(root), train=train, download=False))
        if len(ds.data) != len(ds.targets):
            raise DataError(
                f"{source.title} file {images} has {len(ds.data)} images but its label file {len(ds.targets)} labels: "
                f"{source.expected(root)}"
            )
        return ds.data.unsqueeze(1), ds.targets.to(torch.int64)

    x_train, y_train = read_split(train=True)
    x_test, y_test = read_split(train=False)
    return x_train, y_train, x_test, y_test, tuple(cls.classes)
