"""DCGAN-style nets for the class-conditional GAN family (DCGAN, cDCGAN, ACGAN, 2N-GAN, InfoGAN).

G: [z, one-hot(y)] -> dense -> 4x4 map -> transposed-conv up-sampling blocks (BN, ReLU) -> tanh.
D: [x, one-hot(y) as constant planes] -> strided 4x4 convs with LeakyReLU(0.2) down to 4x4 ->
flattened -> a linear head with 1 + `aux` outputs: the adversarial logit, then the auxiliary
logits a GAN kind reads (ACGAN's classes, 2N-GAN's 2K classes, InfoGAN's codes); with
`kd_features` = d > 0, KD-DLGAN's linear head D_f adds d columns last.

How the label enters is `label_input`: "onehot" (concatenated: cDCGAN's G and D; ACGAN's,
2N-GAN's and InfoGAN's G) or "none" (DCGAN; the D of ACGAN, 2N-GAN and InfoGAN). D has no batch
norm: the training loop passes reals and fakes through it as one batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.nets.gan import n_blocks

DC_LABEL_INPUTS = ("onehot", "none")


def _check(label_input: str, num_classes: int) -> None:
    if label_input not in DC_LABEL_INPUTS:
        raise ValueError(f"DCGAN nets take label_input {' or '.join(DC_LABEL_INPUTS)}, not {label_input!r}")
    if label_input == "onehot" and num_classes < 1:
        raise ValueError("label_input 'onehot' needs num_classes >= 1")


class DCGenerator(nn.Module):
    def __init__(
        self, z_dim: int, image_size: int, channels: int, width: int = 64, *, label_input: str, num_classes: int = 0
    ) -> None:
        super().__init__()
        _check(label_input, num_classes)
        self.num_classes = num_classes if label_input == "onehot" else 0
        n = n_blocks(image_size)
        widths = [width * 2 ** (n - i) for i in range(n + 1)]  # e.g. 4w, 2w, w
        self.dense = nn.Sequential(
            nn.Linear(z_dim + self.num_classes, 4 * 4 * widths[0], bias=False),
            nn.Unflatten(1, (widths[0], 4, 4)),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        for i in range(n - 1):
            blocks += [
                nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 2, 1, bias=False),
                nn.BatchNorm2d(widths[i + 1]),
                nn.ReLU(),
            ]
        blocks += [nn.ConvTranspose2d(widths[n - 1], channels, 4, 2, 1), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.num_classes:
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], 1)
        return self.blocks(self.dense(z))


class DCDiscriminator(nn.Module):
    def __init__(
        self,
        image_size: int,
        channels: int,
        width: int = 64,
        *,
        label_input: str,
        num_classes: int = 0,
        aux: int = 0,
        kd_features: int = 0,
    ) -> None:
        super().__init__()
        _check(label_input, num_classes)
        self.num_classes, self.aux = (num_classes if label_input == "onehot" else 0), aux
        n = n_blocks(image_size)
        widths = [channels + self.num_classes] + [width * 2**i for i in range(n)]
        layers: list[nn.Module] = []
        for i in range(n):
            layers += [nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.feature_dim = widths[-1] * 4 * 4
        self.head = nn.Linear(self.feature_dim, 1 + aux)
        self.kd = nn.Linear(self.feature_dim, kd_features) if kd_features else None

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(N,) adversarial logits, or (N, 1 + aux + kd_features): the adversarial logit, the
        auxiliary ones, then KD-DLGAN's D_f."""
        if self.num_classes:
            planes = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], 1)
        h = self.body(x)
        out = self.head(h)
        if self.kd is not None:
            return torch.cat([out, self.kd(h)], 1)
        return out if self.aux else out.squeeze(1)
