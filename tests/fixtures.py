"""Writers of tiny data sets in the real on-disk formats (CIFAR pickles, MNIST idx files), shared by
the data loader tests and the full-size profile smoke tests."""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes ``bytes`` as Python 2 ``str`` opcodes, as in the official CIFAR files (which Python 2 pickled)."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        self.write(
            pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256 else pickle.BINSTRING + struct.pack("<i", n) + obj
        )
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def write_pickle(path: Path, obj: dict, style: str) -> None:
    """style "py2": like the official files; "py3": re-pickled under Python 3 (bytes keys stay bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if style == "py2":
        buf = io.BytesIO()
        _Py2Pickler(buf, protocol=2).dump(obj)
        path.write_bytes(buf.getvalue())
    else:
        path.write_bytes(pickle.dumps(obj))


def cifar_images(n: int, seed: int) -> np.ndarray:
    """(n, 3072) uint8 rows; row 0 is all 255, row 1 all 0, the rest random."""
    data = np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)
    data[0], data[1] = 255, 0
    return data


def _every_class(n_classes: int, per_class: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """per_class images of each class, in shuffled order: (images, labels)."""
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(n_classes), per_class))
    return cifar_images(len(labels), seed), labels.tolist()


def write_cifar10(
    root: Path, style: str = "py2", train_per_class: int | None = None, test_per_class: int = 1
) -> dict[str, np.ndarray]:
    """CIFAR-10's python version under root/cifar-10-batches-py: by default 10 training images
    (2 per data batch) and 3 test images at fixed labels; with `train_per_class`, that many
    training images of every class (spread over the five batches) and `test_per_class` test ones."""
    folder = root / "cifar-10-batches-py"
    train_data, train_labels = [], []
    if train_per_class is None:
        batches = [(cifar_images(2, seed=i), [i, (i * 3) % 10]) for i in range(1, 6)]
        test_data, test_labels = cifar_images(3, seed=9), [9, 0, 4]
    else:
        data, labels = _every_class(10, train_per_class, seed=1)
        batches = [(d, lab.tolist()) for d, lab in zip(np.array_split(data, 5), np.array_split(np.array(labels), 5))]
        test_data, test_labels = _every_class(10, test_per_class, seed=9)
    for i, (data, labels) in enumerate(batches, start=1):
        write_pickle(folder / f"data_batch_{i}", {b"batch_label": b"x", b"data": data, b"labels": labels}, style)
        train_data.append(data)
        train_labels += labels
    write_pickle(folder / "test_batch", {b"data": test_data, b"labels": test_labels}, style)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    write_pickle(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072}, style)
    return {
        "x_train": np.concatenate(train_data),
        "y_train": np.array(train_labels),
        "x_test": test_data,
        "y_test": np.array(test_labels),
    }


def write_cifar100(
    root: Path, style: str = "py2", train_per_class: int | None = None, test_per_class: int = 1
) -> dict[str, np.ndarray]:
    """CIFAR-100's python version under root/cifar-100-python: by default 4 training and 2 test
    images at fixed labels; with `train_per_class`, that many training images of every class and
    `test_per_class` test ones."""
    folder = root / "cifar-100-python"
    if train_per_class is None:
        train_data, train_labels = cifar_images(4, seed=1), [0, 99, 42, 7]
        test_data, test_labels = cifar_images(2, seed=2), [5, 98]
    else:
        train_data, train_labels = _every_class(100, train_per_class, seed=1)
        test_data, test_labels = _every_class(100, test_per_class, seed=2)
    coarse = {b"coarse_labels": [0] * len(train_labels)}
    write_pickle(folder / "train", {b"data": train_data, b"fine_labels": train_labels, **coarse}, style)
    coarse = {b"coarse_labels": [0] * len(test_labels)}
    write_pickle(folder / "test", {b"data": test_data, b"fine_labels": test_labels, **coarse}, style)
    names = [f"class{i}".encode() for i in range(100)]
    write_pickle(folder / "meta", {b"fine_label_names": names, b"coarse_label_names": [b"c"] * 20}, style)
    return {
        "x_train": train_data,
        "y_train": np.array(train_labels),
        "x_test": test_data,
        "y_test": np.array(test_labels),
    }


def idx_bytes(array: np.ndarray) -> bytes:
    """Unsigned-byte idx file: magic 0x0000080<ndim>, big-endian int32 sizes, then the data."""
    return struct.pack(f">I{array.ndim}I", 0x0800 + array.ndim, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx_dataset(root: Path, folder: str, size: int = 5) -> dict[str, np.ndarray]:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    out = {}
    for split, prefix, n in (("train", "train", 6), ("test", "t10k", 4)):
        images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
        images[0], images[1] = 255, 0
        labels = np.arange(n, dtype=np.uint8) % 10
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
        out[f"x_{split}"], out[f"y_{split}"] = images, labels
    return out
