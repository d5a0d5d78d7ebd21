"""prepare: data set -> data/<experiment>/prepared/dataset.pt (limited training split)."""

from __future__ import annotations

import dataclasses

import torch

from pipeline.data import limit_per_class, load_digits, load_torchvision, per_class_indices, save_dataset
from pipeline.params import Params
from pipeline.stages.common import Paths, write_json
from pipeline.ui import info


def run(params: Params, experiment: str, paths: Paths) -> dict:
    p = params.experiment(experiment).data
    if p.name == "digits":
        ds = load_digits(image_size=p.image_size, test_fraction=p.test_fraction, seed=params.seed)
    else:
        ds = load_torchvision(p.name, p.root, image_size=p.image_size)
    n_full = len(ds.y_train)
    if p.val_per_class:
        val = per_class_indices(ds.y_train, n_per_class=p.val_per_class, seed=params.seed + 1)
        rest = torch.ones(n_full, dtype=torch.bool)
        rest[val] = False
        ds = dataclasses.replace(ds, x_val=ds.x_train[val], y_val=ds.y_train[val], x_train=ds.x_train[rest], y_train=ds.y_train[rest])
    if p.train_per_class is not None or p.train_fraction is not None:
        x, y = limit_per_class(ds.x_train, ds.y_train, fraction=p.train_fraction, n_per_class=p.train_per_class, seed=params.seed)
        ds = dataclasses.replace(ds, x_train=x, y_train=y)
    save_dataset(ds, paths.prepared)
    stats = {"n_train": len(ds.y_train), "n_train_full": n_full, "n_val": len(ds.y_val), "n_test": len(ds.y_test), "num_classes": ds.num_classes, "image_size": ds.image_size, "channels": ds.channels}
    write_json(paths.metrics / "prepare.json", stats)
    info(f"prepare[{experiment}]: {stats['n_train']} training images (of {n_full}), {stats['n_val']} validation, {stats['n_test']} test, {ds.num_classes} classes -> {paths.prepared}")
    return stats
