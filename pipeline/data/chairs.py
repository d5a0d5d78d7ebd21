"""A built-in RC-49-like data set: procedurally built 3-D chairs rendered at yaw angles (label: the angle in degrees).

Every chair model is a handful of boxes (seat, backrest or back posts and rails, four legs, optional armrests and
stretchers) whose proportions are drawn from the seed. Images are ray-cast against the boxes (an exact z-buffer):
an orthographic camera looks down at the chair from ``_ELEVATION_DEG`` while the chair turns about its vertical
axis by the yaw angle; faces are Lambert-shaded (fixed directional light plus ambient), rendered at a higher
resolution and area-averaged down (anti-aliasing). Grey-scale, one channel, background -1, values in ``[-1, 1]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from pipeline.data.core import ImageDataset
from pipeline.data.regression import RegressionDataset

_ELEVATION_DEG = 25.0  # camera above the horizon, looking down at the chair
_LIGHT = np.array([-0.45, 0.85, 0.55])  # direction towards the light (world: x right, y up, z towards the camera)
_AMBIENT, _DIFFUSE = 0.22, 0.78
_HALF_VIEW = 1.16  # the image shows [-_HALF_VIEW, _HALF_VIEW]^2 of the screen plane, in chair units
_LOOK_AT_Y = 0.88  # height of the image centre (the chair stands on y = 0)
_CHUNK = 64  # images ray-cast at once (keeps the per-pixel temporaries in cache)


@dataclass(frozen=True)
class Box:
    """A box with ``centre`` and ``half`` extents (chair units), tilted by ``tilt_deg`` about the x axis."""

    centre: tuple[float, float, float]
    half: tuple[float, float, float]
    tilt_deg: float = 0.0

    def rotation(self) -> np.ndarray:
        """Local-to-chair rotation (see :func:`_tilt`)."""
        return _tilt(self.tilt_deg)


def _tilt(degrees: float) -> np.ndarray:
    """Rotation about the x axis; positive angles turn +y towards +z (the chair's front)."""
    a = math.radians(degrees)
    return np.array([[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)], [0.0, math.sin(a), math.cos(a)]])


@dataclass(frozen=True)
class Chair:
    """One chair model: its boxes and its surface brightness (albedo)."""

    boxes: tuple[Box, ...]
    albedo: float


# --- chair models -------------------------------------------------------------------------------------------------


def chair_model(model_id: int, seed: int = 0) -> Chair:
    """Chair number ``model_id`` of the family drawn from ``seed`` (the same model whatever else is rendered).

    Chairs face +z: the seat is centred on the vertical axis, the backrest stands at the back (-z), so front and
    side views differ clearly.
    """
    rng = np.random.default_rng([seed, model_id, 0xC4A1])
    u = rng.uniform
    width, depth, seat_t = u(0.8, 1.1), u(0.72, 1.0), u(0.06, 0.14)
    leg_h, leg_t, inset = u(0.55, 0.8), u(0.06, 0.11), u(0.0, 0.06)
    seat_top = leg_h + seat_t
    boxes = [Box((0.0, leg_h + seat_t / 2, 0.0), (width / 2, seat_t / 2, depth / 2))]
    leg_x, leg_z = width / 2 - inset - leg_t / 2, depth / 2 - inset - leg_t / 2
    boxes += [
        Box((sx * leg_x, leg_h / 2, sz * leg_z), (leg_t / 2, leg_h / 2, leg_t / 2)) for sx in (-1, 1) for sz in (-1, 1)
    ]
    boxes += _backrest(rng, width, depth, seat_top)
    if rng.random() < 0.45:
        boxes += _armrests(rng, width, depth, seat_top)
    if rng.random() < 0.5:
        boxes += _stretchers(rng, leg_x, leg_z, leg_h, leg_t)
    return Chair(tuple(boxes), albedo=float(u(0.72, 1.0)))


def _backrest(rng: np.random.Generator, width: float, depth: float, seat_top: float) -> list[Box]:
    """A solid panel (maybe raised on two posts) or a ladder back (two posts and rails), leaning back."""
    height, thick = rng.uniform(0.5, 0.85), rng.uniform(0.05, 0.1)
    back_w, tilt = width * rng.uniform(0.75, 1.0), -rng.uniform(0.0, 18.0)
    post_t = rng.uniform(0.05, 0.08)
    pivot = np.array([0.0, seat_top, -depth / 2 + thick / 2])

    def leaning(x: float, y0: float, y1: float, half_x: float, half_z: float) -> Box:
        """A box spanning heights y0..y1 above the pivot along the tilted back, at sideways offset x."""
        local_centre = _tilt(tilt) @ np.array([0.0, (y0 + y1) / 2, 0.0])
        c = pivot + local_centre + np.array([x, 0.0, 0.0])
        return Box((float(c[0]), float(c[1]), float(c[2])), (half_x, (y1 - y0) / 2, half_z), tilt)

    posts_x = back_w / 2 - post_t / 2
    if rng.random() < 0.35:  # ladder back
        rail_h = rng.uniform(0.08, 0.16)
        return [
            leaning(-posts_x, 0.0, height, post_t / 2, thick / 2),
            leaning(posts_x, 0.0, height, post_t / 2, thick / 2),
            leaning(0.0, height - rail_h, height, posts_x - post_t / 2, thick / 2 * 0.8),
            leaning(0.0, height * 0.45, height * 0.45 + rail_h * 0.7, posts_x - post_t / 2, thick / 2 * 0.7),
        ]
    gap = rng.uniform(0.12, 0.3) * height if rng.random() < 0.5 else 0.0
    panel = [leaning(0.0, gap, height, back_w / 2, thick / 2)]
    if gap:
        panel += [leaning(sx * posts_x * 0.8, 0.0, gap, post_t / 2, thick / 2 * 0.8) for sx in (-1, 1)]
    return panel


def _armrests(rng: np.random.Generator, width: float, depth: float, seat_top: float) -> list[Box]:
    """Two arm bars above the seat's sides, each on a front support."""
    arm_h, arm_t = rng.uniform(0.18, 0.3), rng.uniform(0.05, 0.09)
    z0, z1 = -depth / 2, depth / 2 * rng.uniform(0.6, 0.95)
    x = width / 2 - arm_t / 2
    boxes = []
    for sx in (-1, 1):
        boxes.append(Box((sx * x, seat_top + arm_h, (z0 + z1) / 2), (arm_t / 2, 0.03, (z1 - z0) / 2)))
        boxes.append(Box((sx * x, seat_top + arm_h / 2, z1 - arm_t / 2), (arm_t / 2 * 0.8, arm_h / 2, arm_t / 2 * 0.8)))
    return boxes


def _stretchers(rng: np.random.Generator, leg_x: float, leg_z: float, leg_h: float, leg_t: float) -> list[Box]:
    """Side stretchers between front and back legs, maybe joined by a middle bar (an H)."""
    y, half = leg_h * rng.uniform(0.2, 0.45), leg_t * 0.3
    boxes = [Box((sx * leg_x, y, 0.0), (half, half, leg_z)) for sx in (-1, 1)]
    if rng.random() < 0.5:
        boxes.append(Box((0.0, y, 0.0), (leg_x, half, half)))
    return boxes


# --- renderer -----------------------------------------------------------------------------------------------------


def _camera() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """View direction, screen right, screen up and a point on the ray-origin plane (world coordinates)."""
    phi = math.radians(_ELEVATION_DEG)
    view = np.array([0.0, -math.sin(phi), -math.cos(phi)])
    right = np.array([1.0, 0.0, 0.0])
    up = np.array([0.0, math.cos(phi), -math.sin(phi)])
    origin = np.array([0.0, _LOOK_AT_Y, 0.0]) - 10.0 * view
    return view, right, up, origin


def _yaw_matrices(angles_deg: np.ndarray) -> np.ndarray:
    """``(N, 3, 3)`` rotations about the vertical axis (chair to world)."""
    t = np.radians(angles_deg)
    c, s, z, o = np.cos(t), np.sin(t), np.zeros_like(t), np.ones_like(t)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


@dataclass(frozen=True)
class _BoxRays:
    """One box seen by a chunk of images: where rays enter/exit it and how bright its entry faces are.

    A ray through screen point (a, b) lies inside the box's slab along local axis k between ``m_k - w_k`` and
    ``m_k + w_k``, where ``m_k = A_k + a Ba_k + b Bb_k``. Only the pixel window ``rows`` x ``cols`` (slices of the
    full image) can show the box. ``row_part`` ``(N, 2, 3, len(rows))`` holds ``A_k -/+ w_k + b Bb_k`` (index 0:
    entry, 1: exit) and ``col_part`` ``(N, 1, 3, len(cols))`` holds ``a Ba_k``; their broadcast sum is the distance
    along the ray. ``shade`` ``(N, 3)``: brightness of the entry face along each local axis.
    """

    rows: slice
    cols: slice
    row_part: np.ndarray
    col_part: np.ndarray
    shade: np.ndarray


def _box_rays(box: Box, albedo: float, yaw: np.ndarray, grid: np.ndarray) -> _BoxRays | None:
    """Ray/box set-up for ``box`` under the yaw rotations ``yaw`` ``(N, 3, 3)``; None when it is off-screen."""
    view, right, up, origin = _camera()
    rotation, yaw_t = box.rotation(), np.transpose(yaw, (0, 2, 1))
    window = _screen_window(box, yaw, grid)
    if window is None:
        return None
    rows, cols = window
    m = np.einsum("ji,njk->nik", rotation, yaw_t)  # world -> box local: R_b^T Y^T
    d = m @ view
    d = np.where(np.abs(d) < 1e-6, np.where(d < 0, -1e-6, 1e-6), d)  # rays parallel to a slab
    o0 = (np.einsum("nij,j->ni", yaw_t, origin) - np.asarray(box.centre)) @ rotation
    a_coef, b_coef, const = -(m @ right) / d, -(m @ up) / d, -o0 / d
    w = np.asarray(box.half) / np.abs(d)
    row_part = (const[:, None] + np.stack([-w, w], 1))[..., None] + b_coef[:, None, :, None] * -grid[rows]
    col_part = a_coef[:, None, :, None] * grid[cols]
    normals = -np.sign(d)[..., None] * m  # world normal of the entry face along local axis k: row k of M, signed
    shade = albedo * (_AMBIENT + _DIFFUSE * np.clip(normals @ (_LIGHT / np.linalg.norm(_LIGHT)), 0.0, None))
    f32 = np.float32
    return _BoxRays(rows, cols, row_part.astype(f32), col_part.astype(f32), shade.astype(f32))


def _screen_window(box: Box, yaw: np.ndarray, grid: np.ndarray) -> tuple[slice, slice] | None:
    """Pixel rows and columns covering the box's projection in all ``N`` images (one pixel of margin)."""
    _, right, up, _ = _camera()
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * np.asarray(box.half)
    chair_pts = corners @ box.rotation().T + np.asarray(box.centre)  # (8, 3)
    world = np.einsum("nij,cj->nci", yaw, chair_pts)
    a, b = world @ right, (world - np.array([0.0, _LOOK_AT_Y, 0.0])) @ up
    res, half = len(grid), grid[-1] + (grid[1] - grid[0]) / 2

    def pixels(lo: float, hi: float) -> slice:
        """Pixel indices whose centres lie within one pixel of screen coordinates [lo, hi]."""
        first, last = ((np.array([lo, hi]) / half + 1.0) * res / 2.0 - 0.5).tolist()
        return slice(max(0, math.floor(first) - 1), min(res, math.ceil(last) + 2))

    rows, cols = pixels(-b.max(), -b.min()), pixels(a.min(), a.max())  # row 0 is the top of the image
    return None if rows.start >= rows.stop or cols.start >= cols.stop else (rows, cols)


def _raycast(boxes: list[_BoxRays], n: int, res: int) -> np.ndarray:
    """Brightness ``(N, R, R)`` of the nearest box face under each pixel (0 where the ray hits nothing).

    numpy, single-threaded on purpose: torch's intra-op threads slow down badly when the cores are busy.
    """
    depth = np.full((n, res, res), np.inf, dtype=np.float32)
    image = np.zeros((n, res, res), dtype=np.float32)
    for box in boxes:
        dist = box.row_part[..., :, None] + box.col_part[..., None, :]  # (N, 2, 3, rows, cols)
        entry, exit_ = dist[:, 0], dist[:, 1]
        near = np.maximum(np.maximum(entry[:, 0], entry[:, 1]), entry[:, 2])
        far = np.minimum(np.minimum(exit_[:, 0], exit_[:, 1]), exit_[:, 2])
        old_depth, old_image = depth[:, box.rows, box.cols], image[:, box.rows, box.cols]
        closer = (near < far) & (near < old_depth)
        shade = box.shade[:, :, None, None]
        face = np.where(near == entry[:, 0], shade[:, 0], np.where(near == entry[:, 1], shade[:, 1], shade[:, 2]))
        np.copyto(old_depth, near, where=closer)  # views: writes through to depth and image
        np.copyto(old_image, face, where=closer)
    return image


def _area_downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` pixel blocks of ``(N, R, R)`` images."""
    n, res, _ = images.shape
    return images.reshape(n, res // factor, factor, res // factor, factor).mean(axis=(2, 4))


def _supersampling(image_size: int) -> int:
    """Rays per pixel side: at least 2, and at least 128 rays across the image."""
    return max(2, math.ceil(128 / image_size))


def render_chairs(
    angles_deg: Tensor | np.ndarray, model_ids: Tensor | np.ndarray, image_size: int = 32, seed: int = 0
) -> Tensor:
    """Render chair ``model_ids[i]`` at yaw ``angles_deg[i]`` (degrees) for each i: float32 ``(N, 1, S, S)`` in [-1, 1].

    Pure and deterministic: the models are drawn from ``seed`` (model k is the same whichever others are rendered)
    and the same arguments give identical tensors.
    """
    angles = np.asarray(angles_deg, dtype=np.float64).reshape(-1)
    models = np.asarray(model_ids, dtype=np.int64).reshape(-1)
    if len(angles) != len(models):
        raise ValueError(f"got {len(angles)} angles but {len(models)} model ids")
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16, got {image_size}")
    if len(models) and int(models.min()) < 0:
        raise ValueError("model ids must be >= 0")
    ss = _supersampling(image_size)
    res = image_size * ss
    grid = _HALF_VIEW * ((np.arange(res) + 0.5) * (2.0 / res) - 1.0)
    out = np.zeros((len(angles), image_size, image_size), dtype=np.float32)
    for model_id in np.unique(models):
        chair = chair_model(int(model_id), seed)
        where = np.nonzero(models == model_id)[0]
        where = where[np.argsort(angles[where], kind="stable")]  # similar angles together: small pixel windows
        for start in range(0, len(where), _CHUNK):
            idx = where[start : start + _CHUNK]
            yaw = _yaw_matrices(angles[idx])
            boxes = [rays for box in chair.boxes if (rays := _box_rays(box, chair.albedo, yaw, grid)) is not None]
            out[idx] = _area_downsample(_raycast(boxes, len(idx), res), ss)
    return torch.from_numpy(np.clip(out * 2.0 - 1.0, -1.0, 1.0)).unsqueeze(1)


# --- data sets ----------------------------------------------------------------------------------------------------


def chair_angles(angle_step: float = 0.25) -> np.ndarray:
    """The yaw grid ``angle_step, 2 angle_step, ...`` strictly inside (0, 90) degrees."""
    if not 0.0 < angle_step < 90.0:
        raise ValueError(f"angle_step must be in (0, 90), got {angle_step}")
    n = math.ceil(90.0 / angle_step - 1e-9)
    return angle_step * np.arange(1, n)


def _grid(n_models: int, angle_step: float) -> tuple[np.ndarray, np.ndarray]:
    """Every model at every grid angle, angle-major: angles (degrees) and model ids."""
    if n_models < 1:
        raise ValueError(f"n_models must be >= 1, got {n_models}")
    angles = chair_angles(angle_step)
    return np.repeat(angles, n_models), np.tile(np.arange(n_models), len(angles))


def _dataset(
    angles: np.ndarray, models: np.ndarray, splits: dict[str, np.ndarray], n_models: int, image_size: int, seed: int
) -> RegressionDataset:
    """A chairs RegressionDataset rendering the grid entries listed per split (index arrays into the grid)."""
    fields: dict[str, torch.Tensor] = {}
    for split, idx in splits.items():
        x = render_chairs(angles[idx], models[idx], image_size, seed)
        fields |= {
            f"x_{split}": x,
            f"y_{split}": torch.from_numpy(angles[idx].astype(np.float32)),
            f"attr_{split}": torch.from_numpy(models[idx].astype(np.int64)),
        }
    return RegressionDataset(
        **fields, num_attr=n_models, label_min=0.0, label_max=90.0, label_name="yaw angle (degrees)"
    )


def load_chairs(
    image_size: int = 32,
    n_models: int = 10,
    angle_step: float = 0.25,
    train_angle_fraction: float = 0.8,
    max_per_angle: int = 5,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> RegressionDataset:
    """Rendered chairs split RC-49 style; label = yaw in degrees (range [0, 90]), attribute = chair model.

    A random ``train_angle_fraction`` of the grid angles (see :func:`chair_angles`) are training angles, each keeping
    at most ``max_per_angle`` images of random models; every image at the other angles is a test image (so test
    angles are never seen in training). The validation split is ``val_fraction`` of the kept training images (at
    least one when ``val_fraction > 0``), never taken from test. ``seed`` draws both the chair models and the split.
    """
    if not 0.0 < train_angle_fraction <= 1.0:
        raise ValueError(f"train_angle_fraction must be in (0, 1], got {train_angle_fraction}")
    if max_per_angle < 1:
        raise ValueError(f"max_per_angle must be >= 1, got {max_per_angle}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    angles, models = _grid(n_models, angle_step)
    rng = np.random.default_rng(seed)
    n_angles = len(angles) // n_models
    train_angles = np.sort(rng.permutation(n_angles)[: max(1, round(train_angle_fraction * n_angles))])
    keep = min(max_per_angle, n_models)
    train = np.concatenate([a * n_models + np.sort(rng.permutation(n_models)[:keep]) for a in train_angles])
    test = np.setdiff1d(np.arange(len(angles)), train_angles[:, None] * n_models + np.arange(n_models))
    n_val = min(max(1, round(val_fraction * len(train))) if val_fraction > 0 else 0, len(train) - 1)
    is_val = np.zeros(len(train), dtype=bool)
    is_val[rng.permutation(len(train))[:n_val]] = True
    return _dataset(
        angles, models, {"train": train[~is_val], "test": test, "val": train[is_val]}, n_models, image_size, seed
    )


def load_chairs_all(
    image_size: int = 32, n_models: int = 10, angle_step: float = 0.25, seed: int = 0
) -> RegressionDataset:
    """Every rendered image (all grid angles, all models) as the training split; test and validation are empty.

    For training the evaluation networks on all real images, as the CcGAN paper does. With the same arguments,
    it holds exactly the images :func:`load_chairs` splits up.
    """
    angles, models = _grid(n_models, angle_step)
    empty = np.zeros(0, dtype=np.int64)
    return _dataset(
        angles, models, {"train": np.arange(len(angles)), "test": empty, "val": empty}, n_models, image_size, seed
    )


def render_uniform(
    n: int, lo: float, hi: float, n_models: int, image_size: int, seed: int, draw_seed: int
) -> tuple[Tensor, Tensor]:
    """n fresh chairs of the family ``seed`` (random models, yaw uniform in [lo, hi] degrees): images and their true
    angles (float32). Perfect fakes for a regression student: cGAN-KD's ceiling (the `oracle` student)."""
    rng = np.random.default_rng([draw_seed, 0x0AC1E])
    angles = rng.uniform(lo, hi, n)
    x = render_chairs(angles, rng.integers(0, n_models, n), image_size, seed)
    return x, torch.from_numpy(angles.astype(np.float32))


def load_chair_models(
    image_size: int = 16, n_models: int = 20, per_class: int = 80, test_per_class: int = 50, seed: int = 0
) -> ImageDataset:
    """A classification set with headroom: the class is the chair model, seen at a yaw drawn uniformly over 360
    degrees (so front, side and back views of one model share a class and different models look alike).

    ``per_class`` training and ``test_per_class`` test images per model, each at its own random yaw; ``seed``
    draws the chair models and the angles. Deterministic for a given ``seed``.
    """
    if n_models < 2:
        raise ValueError(f"n_models must be >= 2, got {n_models}")
    if per_class < 1 or test_per_class < 1:
        raise ValueError(f"per_class and test_per_class must be >= 1, got {per_class} and {test_per_class}")
    rng = np.random.default_rng([seed, 0x5EA7])
    per = per_class + test_per_class
    models = np.repeat(np.arange(n_models), per)
    angles = rng.uniform(0.0, 360.0, len(models))
    x = render_chairs(angles, models, image_size, seed)
    y = torch.from_numpy(models)
    is_test = torch.from_numpy(np.tile(np.arange(per) >= per_class, n_models))
    return ImageDataset(
        x_train=x[~is_test].contiguous(),
        y_train=y[~is_test],
        x_test=x[is_test].contiguous(),
        y_test=y[is_test],
        num_classes=n_models,
        class_names=tuple(f"chair{k}" for k in range(n_models)),
    )
