"""Datasets as in-memory tensors: built-in digits, torchvision files on disk, subsampling and a cached format.

Regression data (a continuous label): the circle simulation, rendered chairs and RC-49/UTKFace/Steering Angle HDF5
files.
"""

from pipeline.data.builtin import load_digits
from pipeline.data.chairs import load_chair_models, load_chairs, load_chairs_all, render_chairs
from pipeline.data.circle import circle_centres, make_circle
from pipeline.data.core import (
    ImageDataset,
    limit_per_class,
    load_dataset,
    per_class_indices,
    save_dataset,
    training_label_grid,
)
from pipeline.data.files import load_torchvision
from pipeline.data.hdf5 import load_hdf5_regression
from pipeline.data.regression import RegressionDataset

__all__ = [
    "ImageDataset",
    "RegressionDataset",
    "circle_centres",
    "limit_per_class",
    "load_chair_models",
    "load_chairs",
    "load_chairs_all",
    "load_dataset",
    "load_digits",
    "load_hdf5_regression",
    "load_torchvision",
    "make_circle",
    "per_class_indices",
    "render_chairs",
    "save_dataset",
    "training_label_grid",
]
