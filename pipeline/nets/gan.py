"""SNGAN/BigGAN-style conditional generator and projection discriminator.

G: dense -> 4x4 -> residual up-sampling blocks with conditional batch norm -> tanh.
D: spectrally normalised residual down-sampling blocks, sum pooling, a linear head plus the
projection term <embed(y), phi(x)>. The number of blocks follows the image size (4 * 2^k).
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm as sn


def _n_blocks(image_size: int) -> int:
    k = math.log2(image_size / 4)
    if k < 1 or k != int(k):
        raise ValueError(f"image_size must be 4 * 2^k with k >= 1, got {image_size}")
    return int(k)


class ConditionalBatchNorm2d(nn.Module):
    """BN(x) * (1 + gamma(h)) + beta(h), h a label embedding."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Linear(cond_dim, channels, bias=False)
        self.beta = nn.Linear(cond_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * (1 + self.gamma(h)[:, :, None, None]) + self.beta(h)[:, :, None, None]


class GBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int) -> None:
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(c_in, cond_dim)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.bn2 = ConditionalBatchNorm2d(c_out, cond_dim)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=2, mode="nearest")
        out = self.conv1(F.interpolate(F.relu(self.bn1(x, h)), scale_factor=2, mode="nearest"))
        out = self.conv2(F.relu(self.bn2(out, h)))
        return out + self.skip(up)


class Generator(nn.Module):
    """Class-conditional ResNet generator; the label enters every block through conditional BN."""

    def __init__(self, z_dim: int, num_classes: int, image_size: int, channels: int, width: int = 64) -> None:
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        n = _n_blocks(image_size)
        widths = [width * 2 ** (n - i) for i in range(n + 1)]  # e.g. 4w, 2w, w
        self.embed = nn.Embedding(num_classes, 128)
        self.dense = nn.Linear(z_dim, 4 * 4 * widths[0])
        self.blocks = nn.ModuleList(GBlock(widths[i], widths[i + 1], 128) for i in range(n))
        self.out = nn.Sequential(nn.BatchNorm2d(widths[-1]), nn.ReLU(), nn.Conv2d(widths[-1], channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.embed(y)
        x = self.dense(z).view(len(z), -1, 4, 4)
        for block in self.blocks:
            x = block(x, h)
        return self.out(x)


class DBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.conv1 = sn(nn.Conv2d(c_in, c_out, 3, 1, 1))
        self.conv2 = sn(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.skip = sn(nn.Conv2d(c_in, c_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.first else F.relu(x)
        out = self.conv2(F.relu(self.conv1(out)))
        return F.avg_pool2d(out, 2) + self.skip(F.avg_pool2d(x, 2))


class Discriminator(nn.Module):
    """Spectrally normalised ResNet discriminator with a projection term for the label."""

    def __init__(self, num_classes: int, image_size: int, channels: int, width: int = 64) -> None:
        super().__init__()
        n = _n_blocks(image_size)
        widths = [channels] + [width * 2**i for i in range(n)]
        self.blocks = nn.Sequential(*(DBlock(widths[i], widths[i + 1], first=i == 0) for i in range(n)))
        self.feature_dim = widths[-1]
        self.linear = sn(nn.Linear(self.feature_dim, 1))
        self.embed = sn(nn.Embedding(num_classes, self.feature_dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.blocks(x)).sum(dim=(2, 3))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        phi = self.features(x)
        return self.linear(phi).squeeze(1) + (self.embed(y) * phi).sum(1)
