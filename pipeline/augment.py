"""Image augmentations shared by classifier training and (differentiably) GAN training."""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def random_shift(x: Tensor, max_shift: int) -> Tensor:
    """Translate each image by its own random integer offset in [-max_shift, max_shift]; the
    uncovered border takes the background value -1. Vectorised through one grid_sample."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    shift = torch.randint(-max_shift, max_shift + 1, (n, 2)).float()
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shift[:, 0] / w
    theta[:, 1, 2] = -2 * shift[:, 1] / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False) - 1
