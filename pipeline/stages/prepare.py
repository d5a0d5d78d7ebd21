"""prepare: data set -> data/<experiment>/prepared/dataset.pt (limited training split)."""

from __future__ import annotations

import dataclasses

import torch

from pipeline.artifacts import Paths, write_json
from pipeline.data import (
    limit_per_class,
    load_chair_models,
    load_digits,
    load_torchvision,
    per_class_indices,
    save_dataset,
)
from pipeline.params import Params
from pipeline.ui import info


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    if exp.task == "translation":
        from pipeline.stages import translation

        return translation.prepare(params, experiment, paths)
    if exp.task in ("regression", "circle"):
        return _run_continuous(exp.data, params.seed, paths)
    p = exp.data
    if p.name == "digits":
        ds = load_digits(image_size=p.image_size, test_fraction=p.test_fraction, seed=params.seed)
    elif p.name == "chair_models":
        ds = load_chair_models(p.image_size, p.n_models, p.per_class, p.test_per_class, seed=params.seed)
    else:
        ds = load_torchvision(p.name, p.root, image_size=p.image_size)
    n_full = len(ds.y_train)
    if p.val_per_class:
        val = per_class_indices(ds.y_train, n_per_class=p.val_per_class, seed=params.seed + 1)
        rest = torch.ones(n_full, dtype=torch.bool)
        rest[val] = False
        ds = dataclasses.replace(
            ds, x_val=ds.x_train[val], y_val=ds.y_train[val], x_train=ds.x_train[rest], y_train=ds.y_train[rest]
        )
    if p.train_per_class is not None or p.train_fraction is not None:
        x, y = limit_per_class(
            ds.x_train, ds.y_train, fraction=p.train_fraction, n_per_class=p.train_per_class, seed=params.seed
        )
        ds = dataclasses.replace(ds, x_train=x, y_train=y)
    save_dataset(ds, paths.prepared)
    stats = {
        "n_train": len(ds.y_train),
        "n_train_full": n_full,
        "n_val": len(ds.y_val),
        "n_test": len(ds.y_test),
        "num_classes": ds.num_classes,
        "image_size": ds.image_size,
        "channels": ds.channels,
    }
    write_json(paths.metrics / "prepare.json", stats)
    info(
        f"prepare[{experiment}]: {stats['n_train']} training images (of {n_full}), {stats['n_val']} "
        f"validation, {stats['n_test']} test, {ds.num_classes} classes -> {paths.prepared}"
    )
    return stats


def _run_continuous(p, seed: int, paths: Paths) -> dict:
    """Circle simulation, built-in chairs or a user's HDF5 regression set."""
    from pipeline.data.chairs import load_chairs
    from pipeline.data.circle import make_circle
    from pipeline.data.hdf5 import load_hdf5_regression

    if p.name == "circle":
        ds = make_circle(p.n_train_angles, p.per_angle, p.n_eval_angles, p.eval_per_angle, p.radius, p.std, seed=seed)
    elif p.name == "chairs":
        ds = load_chairs(
            p.image_size,
            p.n_models,
            p.angle_step,
            p.train_angle_fraction,
            p.max_per_label or 10**9,
            p.val_fraction,
            seed=seed,
        )
    else:
        ds = load_hdf5_regression(
            p.name,
            p.root,
            image_size=p.image_size,
            max_per_label=p.max_per_label,
            val_fraction=p.val_fraction,
            seed=seed,
        )
    save_dataset(ds, paths.prepared)
    stats = {
        "n_train": len(ds.y_train),
        "n_val": len(ds.y_val),
        "n_test": len(ds.y_test),
        "n_train_labels": int(torch.unique(ds.y_train).numel()),
        "label_min": ds.label_min,
        "label_max": ds.label_max,
        "shape": list(ds.x_train.shape[1:]),
    }
    write_json(paths.metrics / "prepare.json", stats)
    info(
        f"prepare[{paths.experiment}]: {stats['n_train']} training samples at {stats['n_train_labels']} "
        f"distinct labels, {stats['n_val']} validation, {stats['n_test']} test ({ds.label_name}) -> "
        f"{paths.prepared}"
    )
    return stats
