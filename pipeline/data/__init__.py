"""Datasets as in-memory tensors: built-in digits, torchvision files on disk, subsampling and a cached format."""

from pipeline.data.builtin import load_digits
from pipeline.data.core import ImageDataset, limit_per_class, load_dataset, per_class_indices, save_dataset
from pipeline.data.files import load_torchvision

__all__ = ["ImageDataset", "limit_per_class", "per_class_indices", "load_dataset", "load_digits", "load_torchvision", "save_dataset"]
