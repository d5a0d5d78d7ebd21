"""Networks, chosen by name from one registry per role."""

from __future__ import annotations

from functools import partial

from torch import nn

from pipeline.errors import ParamsError
from pipeline.nets.backbone import Backbone
from pipeline.nets.classifiers import ResNet, SmallCNN
from pipeline.nets.dcgan import DCDiscriminator, DCGenerator
from pipeline.nets.gan import Discriminator, Generator
from pipeline.nets.labels import Y2H, LabelEmbedNet
from pipeline.nets.mlp import MLPBackbone, MLPDiscriminator, MLPGenerator
from pipeline.nets.mobilenetv2 import MobileNetV2
from pipeline.nets.regressors import register as register_regression_nets
from pipeline.nets.shufflenetv2 import ShuffleNetV2
from pipeline.nets.vgg import VGG8
from pipeline.nets.wrn import WideResNet

# classifiers double as regressors (num_classes = 1) and as backbones (features(), feature_dim).
# `width` is each net's first stage's channels (the stem's for mobilenetv2):
#   resnet / resnet14: CIFAR ResNet with one / two basic blocks per stage (8 / 14 layers)
#   resnet20 ... resnet110: He et al.'s CIFAR ResNet-(6n + 2), n blocks per stage; width 16 as published
#   wrn16 / wrn40: pre-activation wide ResNet WRN-16-k / WRN-40-k, width = 16 k (32: WRN-40-2)
#   vgg8: RepDistiller's VGG8 with BN (width 64)   mobilenetv2: width = 32 x the multiplier (16: RepDistiller's)
#   shufflenetv2: width = the first stage's channels, even (116: the 1x net)
CLASSIFIERS = {
    "resnet": ResNet,
    "resnet14": partial(ResNet, blocks=2),
    **{f"resnet{6 * n + 2}": partial(ResNet, blocks=n) for n in (3, 5, 9, 18)},
    "wrn16": partial(WideResNet, depth=16),
    "wrn40": partial(WideResNet, depth=40),
    "vgg8": VGG8,
    "mobilenetv2": MobileNetV2,
    "shufflenetv2": ShuffleNetV2,
    "cnn": SmallCNN,
    "mlp": MLPBackbone,
}
register_regression_nets(CLASSIFIERS)  # vgg11/13/16/19, resnet18/34 (64x64): pipeline/nets/regressors.py
# gan.arch: the nets of the projection cGAN / CcGAN and S3GAN; the DCGAN kinds (pipeline.gan.kinds)
# build DCGAN nets (arch "dcgan" in a checkpoint's build arguments)
GENERATORS = {"sngan": Generator, "mlp": MLPGenerator}
DISCRIMINATORS = {"sngan": Discriminator, "mlp": MLPDiscriminator}


def lookup(registry: dict, name: str, role: str):
    if name not in registry:
        raise ParamsError(f"unknown {role} net {name!r} (known: {', '.join(sorted(registry))})")
    return registry[name]


def check_width(name: str, width: int) -> None:
    """ValueError when the classifier net `name` cannot be built at `width` (params check it at load)."""
    entry = CLASSIFIERS.get(name)
    check = getattr(getattr(entry, "func", entry), "check_width", None)
    if check is not None:
        check(width)


# Image nets keep torch's default (contiguous) layout. Channels-last weights made a training step
# 15-25% faster on this project's 2-core CPU (digits SNGAN, ResNet, CNN), but with torch 2.13's
# oneDNN the backward of a width-4 ResNet on one thread corrupted the heap ("corrupted
# double-linked list"), so it is not used.
def build_classifier(name: str, in_channels: int, num_classes: int, width: int) -> Backbone:
    """`in_channels` is the number of image channels, or the input dimension for "mlp" (points)."""
    return lookup(CLASSIFIERS, name, "classifier")(in_channels, num_classes, width=width)


def build_gan(
    arch: str,
    *,
    data_shape: tuple[int, ...],
    z_dim: int,
    g_width: int,
    d_width: int,
    label_input: str = "class",
    num_classes: int = 0,
    depth: int = 4,
    d_depth: int | None = None,
    periodic_label: bool = False,
    d_head: str = "sum",
    semi: bool = False,
    d_label_input: str | None = None,
    d_aux: int = 0,
    d_features: int = 0,
) -> tuple[nn.Module, nn.Module]:
    """(G, D) for data of shape (C, H, W) (images, "sngan" or "dcgan") or (D,) (points, "mlp");
    `depth` / `d_depth` are the point MLPs' hidden layers (G's, D's: default G's);
    `d_head` is the image D's head (pipeline.nets.gan: "sum" or the CcGAN reference's "ccgan"),
    `semi` adds S3GAN's rotation and class heads to it. DCGAN nets: `label_input` is G's ("onehot"
    or "none"), `d_label_input` D's (default: G's) and `d_aux` the number of D's auxiliary outputs.
    `d_features` > 0 gives the image D KD-DLGAN's head D_f of that width (pipeline.gan.kd_dlgan)."""
    if arch == "dcgan":
        if len(data_shape) != 3:
            raise ParamsError(f"the DCGAN nets are for images, got data of shape {data_shape}")
        channels, size = data_shape[0], data_shape[1]
        d_label = label_input if d_label_input is None else d_label_input
        return DCGenerator(z_dim, size, channels, g_width, label_input=label_input, num_classes=num_classes), (
            DCDiscriminator(
                size, channels, d_width, label_input=d_label, num_classes=num_classes, aux=d_aux, kd_features=d_features
            )
        )
    G_cls, D_cls = lookup(GENERATORS, arch, "generator"), lookup(DISCRIMINATORS, arch, "discriminator")
    cond = {"label_input": label_input, "num_classes": num_classes}
    if arch == "mlp":
        if len(data_shape) != 1:
            raise ParamsError(f"gan.arch 'mlp' is for point data, got data of shape {data_shape}")
        (dim,) = data_shape
        if d_head != "sum":
            raise ParamsError(f"gan.d_head {d_head!r} is for image discriminators, not gan.arch 'mlp'")
        if semi or d_features:
            raise ParamsError("S3GAN's and KD-DLGAN's heads are for image discriminators, not gan.arch 'mlp'")
        mlp = {"periodic": periodic_label, **cond}
        d_layers = depth if d_depth is None else d_depth
        return G_cls(z_dim, dim, g_width, depth=depth, **mlp), D_cls(dim, d_width, depth=d_layers, **mlp)
    if len(data_shape) != 3:
        raise ParamsError(f"gan.arch {arch!r} is for images, got data of shape {data_shape}")
    channels, size = data_shape[0], data_shape[1]
    return G_cls(z_dim, size, channels, width=g_width, **cond), D_cls(
        size, channels, width=d_width, head=d_head, semi=semi, kd_features=d_features, **cond
    )


__all__ = [
    "CLASSIFIERS",
    "DISCRIMINATORS",
    "DCDiscriminator",
    "DCGenerator",
    "GENERATORS",
    "Y2H",
    "Discriminator",
    "Generator",
    "LabelEmbedNet",
    "MLPDiscriminator",
    "MLPGenerator",
    "build_classifier",
    "build_gan",
    "check_width",
    "lookup",
]
