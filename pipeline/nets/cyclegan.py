"""CycleGAN's nets: a ResNet-block generator and a PatchGAN discriminator (instance norm, as in the paper).

Generator: c7s1-k, then `n_down` stride-2 convolutions doubling the channels, `n_blocks` residual
blocks, as many stride-2 transposed convolutions back, and c7s1-C with tanh (reflection padding).
Discriminator: 4x4 convolutions, `n_layers` of stride 2 doubling the channels from `width`, one
of stride 1, then a 1-channel map of real/fake scores, one per overlapping patch.
"""

from __future__ import annotations

from torch import Tensor, nn


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Images ``(N, C, S, S)`` in [-1, 1] to images of the same shape; S must be a multiple of 2^n_down."""

    def __init__(self, channels: int = 3, width: int = 64, n_blocks: int = 9, n_down: int = 2) -> None:
        super().__init__()
        self.channels, self.factor = channels, 2**n_down
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, width, 7), _norm(width), nn.ReLU(True)]
        c = width
        for _ in range(n_down):
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), _norm(2 * c), nn.ReLU(True)]
            c *= 2
        layers += [ResidualBlock(c) for _ in range(n_blocks)]
        for _ in range(n_down):
            layers += [
                nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                _norm(c // 2),
                nn.ReLU(True),
            ]
            c //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not a multiple of {self.factor}")
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """Images ``(N, C, S, S)`` to a map ``(N, 1, P, P)`` of scores, one per image patch (70x70 at 256
    pixels with n_layers 3)."""

    def __init__(self, channels: int = 3, width: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        c = width
        for i in range(1, n_layers + 1):
            out = width * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(c, out, 4, stride=stride, padding=1), _norm(out), nn.LeakyReLU(0.2, True)]
            c = out
        layers.append(nn.Conv2d(c, 1, 4, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """The paper's initialisation: conv weights from N(0, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def generator(arch: dict) -> ResnetGenerator:
    """A generator from a checkpoint's build arguments (``channels``, ``g_width``, ``n_blocks``, ``n_down``)."""
    return ResnetGenerator(arch["channels"], arch["g_width"], arch["n_blocks"], arch["n_down"])


def build_cyclegan(arch: dict) -> tuple[ResnetGenerator, ResnetGenerator, PatchDiscriminator, PatchDiscriminator]:
    """G (A -> B), F (B -> A), D_A, D_B from a checkpoint's build arguments, N(0, 0.02)-initialised."""
    nets = (
        generator(arch),
        generator(arch),
        PatchDiscriminator(arch["channels"], arch["d_width"], arch["d_layers"]),
        PatchDiscriminator(arch["channels"], arch["d_width"], arch["d_layers"]),
    )
    for net in nets:
        init_weights(net)
    return nets
