"""SNGAN/BigGAN-style conditional generator and projection discriminator.

G: dense -> 4x4 -> residual up-sampling blocks with conditional batch norm -> tanh.
D: spectrally normalised residual down-sampling blocks to a 4x4 map, then (`head`) either "sum":
sum pooling of its 8 x width channels (SNGAN), or "ccgan": one more residual block at 4x4 to
16 x width channels, flattened (16 x width x 4 x 4), as the CcGAN reference code's 64x64 D (1024
channels at width 64); a linear head plus the projection term <embed(y), phi(x)> on either. The
number of blocks follows the image size (4 * 2^k).

With `semi` (S3GAN), D has two more linear heads on phi(x): a 4-way rotation classifier and a
class classifier; D(x, y) is then (N, 1 + 4 + K): the projection logit, the rotation logits, the
class logits. A label y < 0 marks an unlabelled real image: its projection term uses the class
head's argmax, with the gradient stopped (S3GAN's co-training). With `kd_features` = d > 0
(KD-DLGAN), a linear head D_f on phi(x) adds d columns last.

How the label enters (`label_input`):
- "class": an integer class; G's conditional BN and D's projection use learned class embeddings.
- "nli": CcGAN's naive label input, y in [0, 1]: G adds y to every element of its first dense
  layer's output (its BNs are unconditional); D's projection term is <phi(x), W (y + 1)>.
- "ili": CcGAN's improved label input: h = y2h(y), a frozen 128-d embedding trained beforehand
  (pipeline.nets.labels); G's conditional BN takes h, D's projection is <phi(x), W h>.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as sn

from pipeline.nets.labels import EMBED_DIM, Y2H, check_label_input, frozen


def n_blocks(image_size: int) -> int:
    k = math.log2(image_size / 4)
    if k < 1 or k != int(k):
        raise ValueError(f"image_size must be 4 * 2^k with k >= 1, got {image_size}")
    return int(k)


class ConditionalBatchNorm2d(nn.Module):
    """BN(x) * (1 + gamma(h)) + beta(h), h a label embedding; a plain affine BN when cond_dim is 0."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=not cond_dim)
        self.gamma = nn.Linear(cond_dim, channels, bias=False) if cond_dim else None
        self.beta = nn.Linear(cond_dim, channels, bias=False) if cond_dim else None

    def forward(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        if self.gamma is None or self.beta is None:
            return self.bn(x)
        return self.bn(x) * (1 + self.gamma(h)[:, :, None, None]) + self.beta(h)[:, :, None, None]


class GBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int) -> None:
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(c_in, cond_dim)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.bn2 = ConditionalBatchNorm2d(c_out, cond_dim)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=2, mode="nearest")
        out = self.conv1(F.interpolate(F.relu(self.bn1(x, h)), scale_factor=2, mode="nearest"))
        out = self.conv2(F.relu(self.bn2(out, h)))
        return out + self.skip(up)


class Generator(nn.Module):
    """Conditional ResNet generator; the label enters through conditional BN (class, ili) or the first layer (nli)."""

    def __init__(
        self,
        z_dim: int,
        image_size: int,
        channels: int,
        width: int = 64,
        *,
        label_input: str = "class",
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        check_label_input(label_input, num_classes)
        self.z_dim, self.num_classes, self.label_input = z_dim, num_classes, label_input
        n = n_blocks(image_size)
        widths = [width * 2 ** (n - i) for i in range(n + 1)]  # e.g. 4w, 2w, w
        self.embed: nn.Module | None = None  # nli: the label enters the first layer
        if label_input == "class":
            self.embed = nn.Embedding(num_classes, EMBED_DIM)
        elif label_input == "ili":
            self.embed = frozen(Y2H())
        cond_dim = 0 if self.embed is None else EMBED_DIM
        self.dense = nn.Linear(z_dim, 4 * 4 * widths[0])
        self.blocks = nn.ModuleList(GBlock(widths[i], widths[i + 1], cond_dim) for i in range(n))
        self.out = nn.Sequential(
            nn.BatchNorm2d(widths[-1]), nn.ReLU(), nn.Conv2d(widths[-1], channels, 3, 1, 1), nn.Tanh()
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.dense(z)
        if self.embed is None:  # nli
            x = x + y.view(-1, 1)
        h = None if self.embed is None else self.embed(y)
        x = x.view(len(z), -1, 4, 4)
        for block in self.blocks:
            x = block(x, h)
        return self.out(x)


D_HEADS = ("sum", "ccgan")


class DBlock(nn.Module):
    """Pre-activation residual block (no ReLU before the first block), halving the map unless down is False."""

    def __init__(self, c_in: int, c_out: int, first: bool, down: bool = True) -> None:
        super().__init__()
        self.first, self.down = first, down
        self.conv1 = sn(nn.Conv2d(c_in, c_out, 3, 1, 1))
        self.conv2 = sn(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.skip = sn(nn.Conv2d(c_in, c_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.first else F.relu(x)
        out = self.conv2(F.relu(self.conv1(out)))
        if not self.down:
            return out + self.skip(x)
        return F.avg_pool2d(out, 2) + self.skip(F.avg_pool2d(x, 2))


class Discriminator(nn.Module):
    """Spectrally normalised ResNet discriminator with a projection term for the label."""

    def __init__(
        self,
        image_size: int,
        channels: int,
        width: int = 64,
        *,
        label_input: str = "class",
        num_classes: int = 0,
        head: str = "sum",
        semi: bool = False,
        kd_features: int = 0,
    ) -> None:
        super().__init__()
        check_label_input(label_input, num_classes)
        if semi and label_input != "class":
            raise ValueError("semi (S3GAN's heads) needs class labels")
        if head not in D_HEADS:
            raise ValueError(f"unknown discriminator head {head!r} (known: {', '.join(D_HEADS)})")
        self.label_input, self.head = label_input, head
        n = n_blocks(image_size)
        widths = [channels] + [width * 2**i for i in range(n)]
        blocks = [DBlock(widths[i], widths[i + 1], first=i == 0) for i in range(n)]
        if head == "ccgan":  # 4x4 -> 4x4 at twice the channels, features flattened
            blocks.append(DBlock(widths[-1], 2 * widths[-1], first=False, down=False))
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = 2 * widths[-1] * 4 * 4 if head == "ccgan" else widths[-1]
        self.linear = sn(nn.Linear(self.feature_dim, 1))
        self.y2h = frozen(Y2H()) if label_input == "ili" else None
        if label_input == "class":
            self.embed = sn(nn.Embedding(num_classes, self.feature_dim))
        else:
            self.embed = sn(nn.Linear(EMBED_DIM if label_input == "ili" else 1, self.feature_dim, bias=False))
        self.semi = sn(nn.Linear(self.feature_dim, 4 + num_classes)) if semi else None
        self.kd = nn.Linear(self.feature_dim, kd_features) if kd_features else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.blocks(x))
        return h.flatten(1) if self.head == "ccgan" else h.sum(dim=(2, 3))

    def label_embedding(self, y: torch.Tensor) -> torch.Tensor:
        if self.label_input == "class":
            return self.embed(y)
        h = self.y2h(y) if self.y2h is not None else (y + 1).view(-1, 1)
        return self.embed(h)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        phi = self.features(x)
        if self.semi is None and self.kd is None:
            return self.linear(phi).squeeze(1) + (self.label_embedding(y) * phi).sum(1)
        heads = [] if self.semi is None else [self.semi(phi)]
        if heads:
            y = torch.where(y < 0, heads[0][:, 4:].detach().argmax(1), y)  # unlabelled: the class head's guess
        if self.kd is not None:
            heads.append(self.kd(phi))
        return torch.cat([self.linear(phi) + (self.label_embedding(y) * phi).sum(1, keepdim=True), *heads], 1)
