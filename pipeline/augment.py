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
    shift = torch.randint(-max_shift, max_shift + 1, (n, 2)).float().to(x.device)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shift[:, 0] / w
    theta[:, 1, 2] = -2 * shift[:, 1] / h
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False) - 1


def random_cutout(x: Tensor, ratio: float) -> Tensor:
    """DiffAugment's cutout: zero (mid-grey in [-1, 1] images) one square of side round(ratio x
    size) per image, centred at a uniformly drawn pixel and clipped at the border; differentiable."""
    if ratio == 0:
        return x
    n, _, h, w = x.shape
    sh, sw = max(1, int(ratio * h + 0.5)), max(1, int(ratio * w + 0.5))
    top = torch.randint(0, h, (n, 1)) - sh // 2
    left = torch.randint(0, w, (n, 1)) - sw // 2
    rows = (torch.arange(h) >= top) & (torch.arange(h) < top + sh)  # (n, h)
    cols = (torch.arange(w) >= left) & (torch.arange(w) < left + sw)  # (n, w)
    keep = ~(rows[:, :, None] & cols[:, None, :])
    return x * keep[:, None].to(x.device, x.dtype)


def diff_augment(x: Tensor, max_shift: int, cutout: float) -> Tensor:
    """DiffAugment's translation then cutout (random_shift, random_cutout), applied to everything
    D sees, reals and fakes, in D's and G's steps."""
    return random_cutout(random_shift(x, max_shift), cutout)
