"""Tests for the regression data: RegressionDataset, its dataset.pt format, the circle, rendered chairs, HDF5 files."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pipeline.data import (
    ImageDataset,
    RegressionDataset,
    circle_centres,
    load_chairs,
    load_chairs_all,
    load_dataset,
    load_hdf5_regression,
    make_circle,
    render_chairs,
    save_dataset,
)
from pipeline.errors import DataError
from tests.h5files import pixels, write_h5

# --- RegressionDataset --------------------------------------------------------------------------------------------


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _regression(**overrides) -> RegressionDataset:
    fields = dict(
        x_train=_images(6),
        y_train=torch.tensor([0.5, 10.0, 20.0, 30.0, 45.0, 89.5]),
        x_test=_images(3, seed=1),
        y_test=torch.tensor([1.0, 2.0, 3.0]),
        x_val=_images(2, seed=2),
        y_val=torch.tensor([4.0, 5.0]),
        attr_train=torch.tensor([0, 1, 2, 0, 1, 2]),
        attr_test=torch.tensor([2, 1, 0]),
        attr_val=torch.tensor([-1, 1]),
        num_attr=3,
        label_min=0.0,
        label_max=90.0,
        label_name="yaw angle (degrees)",
    )
    return RegressionDataset(**(fields | overrides))


def test_regression_dataset_properties_and_defaults() -> None:
    ds = _regression()
    assert ds.is_image and (ds.channels, ds.image_size, ds.sample_shape) == (1, 8, (1, 8, 8))
    points = RegressionDataset(
        x_train=torch.zeros(4, 2),
        y_train=torch.zeros(4),
        x_test=torch.zeros(2, 2),
        y_test=torch.ones(2),
        label_min=0.0,
        label_max=1.0,
        label_name="t",
    )
    assert not points.is_image and points.sample_shape == (2,) and points.num_attr == 0
    assert points.x_val.shape == (0, 2) and points.y_val.shape == (0,) and points.attr_val.shape == (0,)
    assert torch.equal(points.attr_train, torch.full((4,), -1)) and points.attr_test.dtype == torch.int64
    with pytest.raises(ValueError, match="only defined for image data"):
        _ = points.image_size


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"x_train": _images(6).double()}, "x_train must be float32"),
        ({"x_train": torch.zeros(6, 8, 8)}, "x_train must be float32"),
        ({"y_train": torch.arange(6)}, "y_train must be float32"),
        ({"y_train": torch.zeros(5)}, "y_train must be float32 .N,. matching"),
        ({"x_test": torch.zeros(3, 1, 4, 4)}, "x_test must be float32"),
        ({"attr_test": torch.tensor([0, 1])}, "attr_test must be int64"),
        ({"attr_train": torch.zeros(6)}, "attr_train must be int64"),
        ({"attr_train": torch.tensor([0, 1, 2, 3, 0, 0])}, "attr_train has values outside -1..2"),
        ({"y_test": torch.tensor([1.0, 2.0, 91.0])}, "outside label range"),
        ({"y_val": torch.tensor([4.0, float("nan")])}, "non-finite"),
        ({"label_min": 90.0}, "label_min < label_max"),
        ({"num_attr": -1}, "num_attr"),
        ({"label_name": ""}, "label_name"),
    ],
)
def test_regression_dataset_validates(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _regression(**overrides)


def test_normalise_and_denormalise() -> None:
    ds = _regression(label_min=-90.0, label_max=90.0)
    y = torch.tensor([-90.0, 0.0, 45.0, 90.0])
    assert torch.allclose(ds.normalise(y), torch.tensor([0.0, 0.5, 0.75, 1.0]))
    assert torch.allclose(ds.denormalise(ds.normalise(y)), y)
    assert ds.normalise(0.0) == 0.5 and ds.denormalise(0.25) == -45.0


def test_save_load_both_kinds(tmp_path: Path) -> None:
    reg = _regression()
    save_dataset(reg, tmp_path / "reg")
    back = load_dataset(tmp_path / "reg")
    assert isinstance(back, RegressionDataset)
    for name in ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val", "attr_train", "attr_test", "attr_val"):
        assert torch.equal(getattr(back, name), getattr(reg, name)), name
    assert (back.num_attr, back.label_min, back.label_max, back.label_name) == (3, 0.0, 90.0, "yaw angle (degrees)")

    points = make_circle(n_train_angles=4, per_angle=2, n_eval_angles=6, eval_per_angle=1)
    save_dataset(points, tmp_path / "points")
    back_points = load_dataset(tmp_path / "points")
    assert isinstance(back_points, RegressionDataset) and torch.equal(back_points.x_test, points.x_test)
    assert back_points.x_val.shape == (0, 2) and back_points.label_max == pytest.approx(2 * math.pi)

    cls = ImageDataset(_images(2), torch.tensor([0, 1]), _images(1), torch.tensor([1]), 2, ("a", "b"))
    save_dataset(cls, tmp_path / "cls")
    assert torch.load(tmp_path / "cls" / "dataset.pt", weights_only=True)["kind"] == "classification"
    assert isinstance(load_dataset(tmp_path / "cls"), ImageDataset)


def test_file_without_kind_is_classification(tmp_path: Path) -> None:
    cls = ImageDataset(_images(2), torch.tensor([0, 1]), _images(1), torch.tensor([1]), 2, ("a", "b"))
    save_dataset(cls, tmp_path)
    payload = torch.load(tmp_path / "dataset.pt", weights_only=True)
    del payload["kind"]  # as written before regression datasets existed
    torch.save(payload, tmp_path / "dataset.pt")
    back = load_dataset(tmp_path)
    assert isinstance(back, ImageDataset) and back.class_names == ("a", "b")


@pytest.mark.parametrize("change", [{"kind": "ranking"}, {"label_name": 3}, {"attr_val": [1]}])
def test_malformed_regression_file(tmp_path: Path, change: dict) -> None:
    save_dataset(_regression(), tmp_path)
    payload = torch.load(tmp_path / "dataset.pt", weights_only=True) | change
    torch.save(payload, tmp_path / "dataset.pt")
    with pytest.raises(DataError, match="malformed") as info:
        load_dataset(tmp_path)
    assert "\n" not in str(info.value)


# --- circle -------------------------------------------------------------------------------------------------------


def test_make_circle() -> None:
    ds = make_circle()
    assert ds.x_train.shape == (1200, 2) and ds.x_test.shape == (36000, 2) and len(ds.y_val) == 0
    assert (ds.num_attr, ds.label_min, ds.label_max) == (0, 0.0, pytest.approx(2 * math.pi))
    train_angles = torch.unique(ds.y_train)
    assert len(train_angles) == 120 and Counter(ds.y_train.tolist()) == {t: 10 for t in train_angles.tolist()}
    assert torch.allclose(train_angles.double(), 2 * math.pi * torch.arange(120, dtype=torch.float64) / 120, atol=1e-6)
    eval_angles = torch.unique(ds.y_test)
    assert len(eval_angles) == 360
    gap = (eval_angles[:, None] - train_angles[None, :]).abs().min()
    assert gap > 0.008  # half the eval spacing: no evaluation angle is a training angle
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        dist = (x - circle_centres(y)).norm(dim=1)
        assert dist.mean() == pytest.approx(0.02 * math.sqrt(math.pi / 2), rel=0.1)  # mean of a 2-D Gaussian's radius
    assert torch.equal(make_circle(seed=0).x_train, ds.x_train)
    assert not torch.equal(make_circle(seed=1).x_train, ds.x_train)


def test_circle_centres() -> None:
    c = circle_centres(np.array([0.0, math.pi / 2, math.pi]), radius=2.0)
    assert torch.allclose(c, torch.tensor([[0.0, 2.0], [2.0, 0.0], [0.0, -2.0]]), atol=1e-6)


# --- chairs -------------------------------------------------------------------------------------------------------


def test_render_chairs_deterministic_and_in_range() -> None:
    angles, models = np.array([0.0, 30.0, 60.0, 90.0, 45.0]), np.array([0, 1, 2, 3, 7])
    x = render_chairs(angles, models, image_size=32, seed=0)
    assert x.shape == (5, 1, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert torch.all(x[..., 0, :] == -1.0) and torch.all(x[..., :, 0] == -1.0)  # dark background around the chair
    assert ((x > -0.9).float().mean(dim=(1, 2, 3)) > 0.05).all()  # a chair is there
    assert torch.equal(render_chairs(angles, models, 32, seed=0), x)
    assert torch.equal(render_chairs(angles[::-1], models[::-1], 32, seed=0), x.flip(0))  # independent of the batch
    other = render_chairs(angles, models, 32, seed=1)
    assert all(not torch.equal(a, b) for a, b in zip(other, x))  # another seed gives other chair models
    assert render_chairs(np.array([45.0]), np.array([0]), image_size=64).shape == (1, 1, 64, 64)
    with pytest.raises(ValueError):
        render_chairs(angles, models[:2], 32)


def test_chair_angle_is_readable() -> None:
    for model in range(3):
        x = render_chairs(np.array([5.0, 85.0, 45.0, 45.25]), np.full(4, model), image_size=32, seed=0)
        far = (x[0] - x[1]).abs().mean()
        near = (x[2] - x[3]).abs().mean()
        assert far > 10 * near and far > 0.05
    models = render_chairs(np.full(4, 45.0), np.arange(4), 32, seed=0)
    assert min((models[i] - models[j]).abs().mean() for i in range(4) for j in range(i)) > 0.02  # distinct models


def test_load_chairs_split_rules() -> None:
    ds = load_chairs(
        image_size=16, n_models=4, angle_step=2.0, train_angle_fraction=0.75, max_per_angle=2, val_fraction=0.2, seed=3
    )
    assert ds.x_train.shape[1:] == (1, 16, 16) and ds.num_attr == 4
    assert (ds.label_min, ds.label_max, ds.label_name) == (0.0, 90.0, "yaw angle (degrees)")
    all_angles = 2.0 * np.arange(1, 45)  # 2, 4, ..., 88
    kept = list(zip(ds.y_train.tolist(), ds.attr_train.tolist())) + list(zip(ds.y_val.tolist(), ds.attr_val.tolist()))
    assert len(set(kept)) == len(kept)  # validation images are training images, not copies
    per_angle = Counter(a for a, _ in kept)
    assert len(per_angle) == 33 and set(per_angle.values()) == {2}  # round(0.75 * 44) angles, 2 models each
    assert len(ds.y_val) == round(0.2 * len(kept))
    test_angles = set(ds.y_test.tolist())
    assert not test_angles & set(per_angle) and test_angles | set(per_angle) == set(all_angles.tolist())
    assert Counter(ds.y_test.tolist()) == {a: 4 for a in test_angles}  # all models at each test angle
    i = 5
    expected = render_chairs(ds.y_test[i : i + 1].numpy(), ds.attr_test[i : i + 1].numpy(), 16, seed=3)
    assert torch.equal(ds.x_test[i : i + 1], expected)
    again = load_chairs(
        image_size=16, n_models=4, angle_step=2.0, train_angle_fraction=0.75, max_per_angle=2, val_fraction=0.2, seed=3
    )
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.y_val, ds.y_val)


def test_load_chairs_defaults_and_all() -> None:
    ds = load_chairs()
    n_kept = round(0.8 * 359) * 5
    assert len(ds.y_train) + len(ds.y_val) == n_kept and len(ds.y_val) == round(0.1 * n_kept)
    assert len(ds.y_test) == (359 - round(0.8 * 359)) * 10 and ds.image_size == 32
    everything = load_chairs_all(image_size=16, n_models=2, angle_step=10.0)
    assert everything.x_train.shape == (8 * 2, 1, 16, 16) and len(everything.y_test) == len(everything.y_val) == 0
    assert sorted(set(everything.y_train.tolist())) == [10.0 * k for k in range(1, 9)]


# --- HDF5 files ---------------------------------------------------------------------------------------------------


@pytest.fixture
def rc49(tmp_path: Path) -> Path:
    angles = np.repeat(np.round(np.arange(1, 9) * 10.1, 1), 5)  # 8 angles x 5 chair types
    types = np.tile(np.arange(5), 8)
    write_h5(tmp_path / "RC-49_64x64.h5", images=pixels(40), labels=angles, types=types)
    return tmp_path


def test_rc49(rc49: Path) -> None:
    ds = load_hdf5_regression("rc49", rc49, max_per_label=3, val_fraction=0.25, seed=1)
    assert ds.x_train.shape[1:] == (3, 64, 64) and ds.x_train.min() >= -1 and ds.x_train.max() <= 1
    assert (ds.num_attr, ds.label_min, ds.label_max) == (5, 0.0, 90.0)
    train_angles = Counter(ds.y_train.tolist() + ds.y_val.tolist())
    assert len(train_angles) == 4 and max(train_angles.values()) == 3  # half of 8 angles, at most 3 images each
    assert not set(ds.y_test.tolist()) & set(train_angles) and len(ds.y_test) == 4 * 5
    assert sorted(Counter(ds.attr_test.tolist()).values()) == [4] * 5 and len(ds.y_val) == 3
    with h5py.File(rc49 / "RC-49_64x64.h5") as f:
        images, labels, types = f["images"][()], f["labels"][()], f["types"][()]
    for x, y, a in zip(ds.x_test, ds.y_test, ds.attr_test):
        (k,) = np.nonzero((np.abs(labels - y.item()) < 1e-4) & (types == a.item()))[0]
        assert torch.allclose(x, torch.from_numpy(images[k]).float() / 127.5 - 1, atol=1e-6)
    assert load_hdf5_regression("rc49", rc49, image_size=32).x_test.shape[1:] == (3, 32, 32)  # resized 64 file


def test_rc49_reference_split(tmp_path: Path) -> None:
    angles = np.repeat([0.5, 1.5, 2.5, 3.5], 10)
    write_h5(
        tmp_path / "RC-49_64x64.h5",
        images=pixels(40),
        labels=angles,
        types=np.tile(np.arange(10), 4),
        indx_train=np.arange(0, 20),
    )  # the two smallest angles
    ds = load_hdf5_regression("rc49", tmp_path, val_fraction=0.0)
    assert set(ds.y_train.tolist()) == {0.5, 1.5} and set(ds.y_test.tolist()) == {2.5, 3.5} and len(ds.y_train) == 20


def test_utkface_and_steering_angle(tmp_path: Path) -> None:
    ages = np.random.default_rng(0).integers(1, 61, size=40)
    write_h5(tmp_path / "UTKFace_64x64.h5", images=pixels(40), labels=ages)
    ds = load_hdf5_regression("utkface", tmp_path, train_fraction=0.75, val_fraction=0.1)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (27, 3, 10)
    assert sorted(ds.y_train.tolist() + ds.y_val.tolist() + ds.y_test.tolist()) == sorted(ages.astype(float).tolist())
    assert (ds.label_min, ds.label_max, ds.num_attr) == (0.0, 60.0, 0) and (ds.attr_test == -1).all()

    steer = np.linspace(-75.0, 60.0, 40)
    write_h5(tmp_path / "SteeringAngle_64x64.h5", images=pixels(40, seed=2), labels=steer[:, None])
    sa = load_hdf5_regression("steering_angle", tmp_path, image_size=64, max_per_label=None, seed=4)
    assert (sa.label_min, sa.label_max) == (-75.0, 60.0) and sa.y_test.min() >= -75.0
    u = sa.normalise(torch.cat([sa.y_train, sa.y_val, sa.y_test]))
    assert u.min() == 0.0 and u.max() == 1.0
    assert sa.x_test.shape == (8, 3, 64, 64)


def test_hdf5_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_hdf5_regression("rc49", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "RC-49_64x64.h5") in message and "images" in message and "types" in message
    assert "\n" not in message

    write_h5(tmp_path / "UTKFace_64x64.h5", images=pixels(4))
    with pytest.raises(DataError, match=r"no dataset 'labels' \(found: images\)"):
        load_hdf5_regression("utkface", tmp_path)

    write_h5(tmp_path / "UTKFace_64x64.h5", images=pixels(4), labels=np.arange(5.0))
    with pytest.raises(DataError, match="has 4 images but 'labels' has shape"):
        load_hdf5_regression("utkface", tmp_path)

    write_h5(tmp_path / "UTKFace_64x64.h5", images=pixels(4)[:, 0], labels=np.arange(4.0))
    with pytest.raises(DataError, match=r"not \(N, C, S, S\)"):
        load_hdf5_regression("utkface", tmp_path)

    (tmp_path / "SteeringAngle_64x64.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="cannot be read"):
        load_hdf5_regression("steering_angle", tmp_path)

    with pytest.raises(DataError, match="unknown HDF5 data set"):
        load_hdf5_regression("cell200", tmp_path)  # type: ignore[arg-type]
