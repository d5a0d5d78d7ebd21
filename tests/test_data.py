"""Tests for pipeline.data: digits, per-class subsampling, torchvision file loaders and the dataset.pt cache."""

from __future__ import annotations

import os
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.data import (
    ImageDataset,
    limit_per_class,
    load_dataset,
    load_digits,
    load_torchvision,
    save_dataset,
)
from pipeline.data.files import SOURCES
from pipeline.errors import DataError
from tests.fixtures import cifar_images, idx_bytes, write_cifar10, write_cifar100, write_idx_dataset, write_pickle

# --- digits -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    return load_digits()


def test_digits_shapes_dtypes_and_range(digits: ImageDataset) -> None:
    assert digits.x_train.shape[1:] == (1, 16, 16) and digits.x_test.shape[1:] == (1, 16, 16)
    assert (digits.channels, digits.image_size, digits.num_classes) == (1, 16, 10)
    assert digits.class_names == tuple("0123456789")
    assert len(digits.x_train) + len(digits.x_test) == 1797 and len(digits.x_test) == 540  # ceil(0.3 * 1797)
    assert digits.x_train.dtype == torch.float32 and digits.y_train.dtype == torch.int64
    for x in (digits.x_train, digits.x_test):
        assert x.min() == -1.0 and x.max() == 1.0


def test_digits_native_size_keeps_exact_pixel_levels() -> None:
    ds = load_digits(image_size=8)
    assert ds.x_train.shape[1:] == (1, 8, 8)
    levels = ds.x_train * 8 + 8  # 0..16 -> [-1, 1] is x / 8 - 1
    assert torch.allclose(levels, levels.round(), atol=1e-5) and levels.min() == 0 and levels.max() == 16


def test_digits_split_is_stratified(digits: ImageDataset) -> None:
    train, test = Counter(digits.y_train.tolist()), Counter(digits.y_test.tolist())
    assert set(train) == set(test) == set(range(10))
    for c in range(10):
        assert abs(test[c] - 0.3 * (train[c] + test[c])) <= 1


def test_digits_deterministic_per_seed(digits: ImageDataset) -> None:
    again = load_digits(seed=0)
    assert torch.equal(again.x_train, digits.x_train) and torch.equal(again.y_test, digits.y_test)
    other = load_digits(seed=1)
    assert not torch.equal(other.y_test, digits.y_test)
    assert not torch.equal(other.x_test, digits.x_test)


def test_digits_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        load_digits(test_fraction=1.0)
    with pytest.raises(ValueError):
        load_digits(image_size=0)


# --- limit_per_class ----------------------------------------------------------------------------------------------

# class 0: 10 images, class 1: 5, class 2: 1, class 3: 3 (interleaved)
Y = torch.tensor([0, 1, 0, 3, 0, 1, 0, 2, 0, 3, 0, 1, 0, 0, 1, 3, 0, 1, 0])
X = torch.arange(len(Y), dtype=torch.float32).view(-1, 1, 1, 1) + 100  # image i holds value 100 + i


def _counts(y: torch.Tensor) -> dict[int, int]:
    return dict(Counter(y.tolist()))


def test_limit_n_per_class_exact_counts() -> None:
    x, y = limit_per_class(X, Y, n_per_class=3)
    assert _counts(y) == {0: 3, 1: 3, 2: 1, 3: 3}
    idx = (x.flatten() - 100).long()
    assert torch.equal(Y[idx], y)  # images stay paired with their labels
    assert torch.equal(idx, idx.sort().values)  # original order kept
    assert len(set(idx.tolist())) == len(idx)


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.5, {0: 5, 1: 3, 2: 1, 3: 2}),  # 10*.5=5, 5*.5=2.5->3 (half up), 1*.5->1, 3*.5=1.5->2
        (0.1, {0: 1, 1: 1, 2: 1, 3: 1}),  # 1, 0.5->1, 0.1->0->1 (at least one), 0.3->0->1
        (0.3, {0: 3, 1: 2, 2: 1, 3: 1}),  # 3, 1.5->2, 0.3->1, 0.9->1
        (1.0, {0: 10, 1: 5, 2: 1, 3: 3}),
    ],
)
def test_limit_fraction_exact_counts(fraction: float, expected: dict[int, int]) -> None:
    x, y = limit_per_class(X, Y, fraction=fraction)
    assert _counts(y) == expected
    assert torch.equal(Y[(x.flatten() - 100).long()], y)


def test_limit_deterministic_for_seed() -> None:
    a = limit_per_class(X, Y, n_per_class=2, seed=7)
    b = limit_per_class(X, Y, n_per_class=2, seed=7)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    others = [limit_per_class(X, Y, n_per_class=2, seed=s)[0] for s in range(8)]
    assert any(not torch.equal(o, others[0]) for o in others[1:])


def test_limit_large_n_keeps_everything() -> None:
    x, y = limit_per_class(X, Y, n_per_class=1000)
    assert torch.equal(x, X) and torch.equal(y, Y)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"fraction": 0.5, "n_per_class": 2}, {"fraction": 0.0}, {"fraction": 1.5}, {"n_per_class": 0}],
)
def test_limit_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        limit_per_class(X, Y, **kwargs)


def test_limit_rejects_length_mismatch() -> None:
    with pytest.raises(ValueError):
        limit_per_class(X[:-1], Y, n_per_class=1)


def _check_roundtrip(ds: ImageDataset, expected: dict[str, np.ndarray], shape: tuple[int, int, int]) -> None:
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        raw = torch.from_numpy(expected[f"x_{split}"]).reshape(-1, *shape).float()
        assert x.dtype == torch.float32 and x.shape == (len(raw), *shape)
        assert torch.allclose(x, raw / 127.5 - 1, atol=1e-6)
        assert torch.all(x[0] == 1.0) and torch.all(x[1] == -1.0)  # pixel 255 -> 1.0, 0 -> -1.0
        assert y.dtype == torch.int64 and y.tolist() == expected[f"y_{split}"].tolist()


# --- torchvision loaders ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["py2", "py3"])
def test_cifar10_roundtrip(tmp_path: Path, style: str) -> None:
    expected = write_cifar10(tmp_path, style)
    ds = load_torchvision("cifar10", tmp_path)
    _check_roundtrip(ds, expected, (3, 32, 32))
    assert ds.num_classes == 10 and ds.class_names[0] == "airplane" and ds.class_names[9] == "truck"
    # channel-major rows: value at (c, h, w) comes from column c*1024 + h*32 + w
    assert ds.x_train[3, 2, 5, 7] == float(expected["x_train"][3, 2 * 1024 + 5 * 32 + 7]) / 127.5 - 1


@pytest.mark.parametrize("style", ["py2", "py3"])
def test_cifar100_roundtrip(tmp_path: Path, style: str) -> None:
    expected = write_cifar100(tmp_path, style)
    ds = load_torchvision("cifar100", tmp_path)
    _check_roundtrip(ds, expected, (3, 32, 32))
    assert ds.num_classes == 100 and ds.class_names[99] == "class99"


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_roundtrip(tmp_path: Path, name: str, folder: str) -> None:
    expected = write_idx_dataset(tmp_path, folder)
    ds = load_torchvision(name, tmp_path)
    _check_roundtrip(ds, expected, (1, 5, 5))
    assert ds.num_classes == 10 and ds.channels == 1


def test_resize_option(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path, "MNIST")
    ds = load_torchvision("mnist", tmp_path, image_size=8)
    assert ds.x_train.shape == (6, 1, 8, 8) and ds.image_size == 8
    assert torch.all(ds.x_train[0] == 1.0) and torch.all(ds.x_train[1] == -1.0)
    write_cifar10(tmp_path)
    assert load_torchvision("cifar10", tmp_path, image_size=16).x_test.shape == (3, 3, 16, 16)


def test_source_folders_match_torchvision() -> None:
    for source in SOURCES.values():
        cls = source.tv_class
        folder = cls.base_folder if hasattr(cls, "base_folder") else f"{cls.__name__}/raw"
        assert source.folder == folder


@pytest.mark.parametrize(
    ("name", "layout"),
    [
        ("cifar10", "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}"),
        ("cifar100", "cifar-100-python/{train,test,meta}"),
        ("mnist", "MNIST/raw/{train-images-idx3-ubyte,train-labels-idx1-ubyte,t10k-images-idx3-ubyte,"),
        ("fashion_mnist", "FashionMNIST/raw/{train-images-idx3-ubyte,"),
    ],
)
def test_missing_directory_names_path_and_layout(tmp_path: Path, name: str, layout: str) -> None:
    root = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        load_torchvision(name, root)
    message = str(info.value)
    assert "\n" not in message and "not found" in message
    assert f"{root}/{layout}" in message


def test_missing_single_file_is_named(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "batches.meta").unlink()
    with pytest.raises(DataError, match="no file batches.meta"):
        load_torchvision("cifar10", tmp_path)


def test_truncated_pickle(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(DataError) as info:
        load_torchvision("cifar10", tmp_path)
    assert str(batch) in str(info.value) and "malformed" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "batch",
    [
        {b"data": np.zeros((2, 3072), np.uint8)},  # no labels
        {b"data": np.zeros((2, 100), np.uint8), b"fine_labels": [0, 1]},  # wrong row length
        {b"data": np.zeros((2, 3072), np.float32), b"fine_labels": [0, 1]},  # wrong dtype
        {b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0]},  # label count mismatch
    ],
)
def test_malformed_cifar_batch(tmp_path: Path, batch: dict) -> None:
    write_cifar100(tmp_path)
    write_pickle(tmp_path / "cifar-100-python" / "test", batch, "py3")
    with pytest.raises(DataError, match="cifar-100-python/test is malformed"):
        load_torchvision("cifar100", tmp_path)


def test_cifar_label_out_of_range(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    write_pickle(
        tmp_path / "cifar-10-batches-py" / "test_batch", {b"data": cifar_images(2, 0), b"labels": [0, 10]}, "py3"
    )
    with pytest.raises(DataError, match="inconsistent"):
        load_torchvision("cifar10", tmp_path)


class _Exploit:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.target),))


def test_pickle_cannot_run_code(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    target = tmp_path / "pwned"
    write_pickle(tmp_path / "cifar-10-batches-py" / "data_batch_1", {b"data": _Exploit(target)}, "py3")
    with pytest.raises(DataError, match="not allowed"):
        load_torchvision("cifar10", tmp_path)
    assert not target.exists()


def test_idx_bad_magic(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path, "FashionMNIST")
    path = tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(struct.pack(">I", 0x0801) + path.read_bytes()[4:])  # label magic on an image file
    with pytest.raises(DataError) as info:
        load_torchvision("fashion_mnist", tmp_path)
    message = str(info.value)
    assert str(path) in message and "magic" in message and "FashionMNIST/raw/{" in message


@pytest.mark.parametrize("keep", [2, 30])
def test_idx_truncated(tmp_path: Path, keep: int) -> None:
    write_idx_dataset(tmp_path, "MNIST")
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(DataError, match="train-images-idx3-ubyte is malformed"):
        load_torchvision("mnist", tmp_path)


def test_idx_label_count_mismatch(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DataError, match="4 images but its label file 3 labels"):
        load_torchvision("mnist", tmp_path)


def test_unknown_name_lists_valid_names(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cifar10, cifar100, mnist, fashion_mnist"):
        load_torchvision("imagenet", tmp_path)


# --- ImageDataset, save_dataset / load_dataset -----------------------------------------------------------------------


def _small_dataset() -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    return ImageDataset(
        x_train=torch.rand(6, 3, 4, 4, generator=g) * 2 - 1,
        y_train=torch.tensor([0, 1, 2, 0, 1, 2]),
        x_test=torch.rand(3, 3, 4, 4, generator=g) * 2 - 1,
        y_test=torch.tensor([2, 1, 0]),
        num_classes=3,
        class_names=("a", "b", "c"),
    )


def test_image_dataset_validates() -> None:
    ds = _small_dataset()
    assert (ds.channels, ds.image_size) == (3, 4)
    with pytest.raises(ValueError):
        ImageDataset(ds.x_train, ds.y_train[:-1], ds.x_test, ds.y_test, 3, ds.class_names)
    with pytest.raises(ValueError):
        ImageDataset(ds.x_train, ds.y_train, ds.x_test, ds.y_test, 2, ("a", "b"))  # label 2 out of range
    with pytest.raises(ValueError):
        ImageDataset(ds.x_train.double(), ds.y_train, ds.x_test, ds.y_test, 3, ds.class_names)


def test_save_load_roundtrip(tmp_path: Path) -> None:
    ds = _small_dataset()
    directory = tmp_path / "new" / "dir"
    save_dataset(ds, directory)
    save_dataset(ds, directory)  # overwriting is fine
    assert sorted(p.name for p in directory.iterdir()) == ["dataset.pt"]  # no temp files left behind
    back = load_dataset(directory)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(back, name), getattr(ds, name))
    assert (back.num_classes, back.class_names) == (3, ("a", "b", "c"))
    plain = torch.load(directory / "dataset.pt", weights_only=True)
    assert isinstance(plain, dict) and plain["class_names"] == ["a", "b", "c"]


def test_save_writes_only_the_viewed_data(tmp_path: Path) -> None:
    big = torch.zeros(1000, 3, 32, 32)  # 12 MB
    ds = ImageDataset(big[:2], torch.tensor([0, 1]), big[2:3], torch.tensor([1]), 2, ("a", "b"))
    save_dataset(ds, tmp_path)
    assert (tmp_path / "dataset.pt").stat().st_size < 100_000


@pytest.mark.parametrize(
    "content",
    [b"not a torch file", "truncated", {"format_version": 1, "num_classes": 3}, {"x_train": 1}],
)
def test_load_corrupt_dataset(tmp_path: Path, content: object) -> None:
    path = tmp_path / "dataset.pt"
    if content == "truncated":
        save_dataset(_small_dataset(), tmp_path)
        path.write_bytes(path.read_bytes()[:200])
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_load_missing_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset not found"):
        load_dataset(tmp_path / "absent")
