"""Generative-quality and classification metrics."""

from pipeline.metrics.image import (
    FeatureModule,
    classifier_accuracy,
    fid,
    frechet_distance,
    inception_fid,
    inception_score,
    intra_fid,
)

__all__ = [
    "FeatureModule",
    "classifier_accuracy",
    "fid",
    "frechet_distance",
    "inception_fid",
    "inception_score",
    "intra_fid",
]
