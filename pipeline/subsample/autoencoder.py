"""The feature extractor of DRE for continuous labels: a sparse autoencoder with a regression head.

x -> code h (ReLU, so that the sparsity term mean(h) is an L1 norm) -> x_hat, and h -> y_hat.
forward(x) is y_hat, features(x) is h, as for the classifiers (the `predict` and FID helpers
work unchanged). Convolutional for images, an MLP for points.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.nets.backbone import Backbone

Tensor = torch.Tensor


class SparseAutoencoder(Backbone):
    def __init__(self, data_shape: tuple[int, ...], code_dim: int = 64, width: int = 32) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.feature_dim = code_dim
        if len(data_shape) == 1:
            (d,) = data_shape
            self.encoder = nn.Sequential(
                nn.Linear(d, width),
                nn.ReLU(),
                nn.Linear(width, width),
                nn.ReLU(),
                nn.Linear(width, code_dim),
                nn.ReLU(),
            )
            self.decoder = nn.Sequential(
                nn.Linear(code_dim, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, d)
            )
        elif len(data_shape) == 3:
            c, size = data_shape[0], data_shape[1]
            if size % 4:
                raise ValueError(f"image size {size}: the autoencoder needs a multiple of 4")
            s = size // 4
            self.encoder = nn.Sequential(
                nn.Conv2d(c, width, 4, 2, 1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.Conv2d(width, 2 * width, 4, 2, 1),
                nn.BatchNorm2d(2 * width),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(2 * width * s * s, code_dim),
                nn.ReLU(),
            )
            self.decoder = nn.Sequential(
                nn.Linear(code_dim, 2 * width * s * s),
                nn.ReLU(),
                nn.Unflatten(1, (2 * width, s, s)),
                nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.ConvTranspose2d(width, c, 4, 2, 1),
                nn.Tanh(),
            )
        else:
            raise ValueError(
                f"data of shape {tuple(data_shape)}: the autoencoder takes points (D,) or images (C, H, W)"
            )
        self.head = nn.Linear(code_dim, 1)

    def stage_maps(self, x: Tensor) -> list[Tensor]:
        return [self.encoder(x)]  # the code h

    def reconstruct(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(x_hat, h, y_hat) in one pass."""
        h = self.encoder(x)
        return self.decoder(h), h, self.head(h).view(-1)
