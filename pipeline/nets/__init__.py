"""Networks, chosen by name from one registry per role."""

from __future__ import annotations

from torch import nn

from pipeline.errors import ParamsError
from pipeline.nets.classifiers import ResNet, SmallCNN
from pipeline.nets.gan import Discriminator, Generator

CLASSIFIERS = {"resnet": ResNet, "cnn": SmallCNN}
GENERATORS = {"sngan": Generator}
DISCRIMINATORS = {"sngan": Discriminator}


def lookup(registry: dict, name: str, role: str):
    if name not in registry:
        raise ParamsError(f"unknown {role} net {name!r} (known: {', '.join(sorted(registry))})")
    return registry[name]


def build_classifier(name: str, in_channels: int, num_classes: int, width: int) -> nn.Module:
    return lookup(CLASSIFIERS, name, "classifier")(in_channels, num_classes, width=width)


__all__ = ["CLASSIFIERS", "GENERATORS", "DISCRIMINATORS", "build_classifier", "lookup", "Generator", "Discriminator"]
