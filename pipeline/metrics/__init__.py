"""Generative-quality and classification metrics."""

from pipeline.metrics.continuous import (
    binned_fid,
    circle_metrics,
    counts_by_label,
    diversity,
    label_bins,
    label_score,
    label_score_by_bin,
)
from pipeline.metrics.image import (
    classifier_accuracy,
    fid,
    frechet_distance,
    inception_fid,
    inception_score,
    intra_fid,
)

__all__ = [
    "binned_fid",
    "circle_metrics",
    "counts_by_label",
    "classifier_accuracy",
    "diversity",
    "fid",
    "frechet_distance",
    "inception_fid",
    "inception_score",
    "intra_fid",
    "label_bins",
    "label_score",
    "label_score_by_bin",
]
