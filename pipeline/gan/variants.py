"""What one GAN variant trains on: the arguments that build (G, D) and how labels are drawn.

Class labels: a class-conditional GAN. Continuous labels (normalised to [0, 1]): CcGAN with a
hard or soft vicinity (rule of thumb unless sigma / kappa / nu are given) and NLI or ILI label
input, or the baseline cGAN on labels binned into n_bins classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from pipeline.gan.binned import Bins
from pipeline.gan.train import ClassConditioning, Conditioning, VicinalConditioning
from pipeline.gan.vicinal import VicinalSampler, Vicinity, rule_of_thumb


@dataclass
class VariantSetup:
    arch: dict[str, Any]  # build_gan's keyword arguments, plus "bins" (lo, hi) for the binned baseline
    cond: Conditioning
    vicinity: Vicinity | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)  # what else makes a checkpoint differ

    @property
    def build_args(self) -> dict[str, Any]:
        return {k: v for k, v in self.arch.items() if k != "bins"}


def vicinity_of(u: torch.Tensor, kind: str, m_kappa: float, gap: float | None = None, sigma: float | None = None, kappa: float | None = None, nu: float | None = None) -> Vicinity:
    """The rule-of-thumb vicinity on normalised training labels u, with optional overrides."""
    s, k, n = rule_of_thumb(u, m_kappa, gap)
    return Vicinity(kind, s if sigma is None else sigma, k if kappa is None else kappa, n if nu is None else nu)


def class_setup(net: dict[str, Any], x: torch.Tensor, y: torch.Tensor, num_classes: int) -> VariantSetup:
    return VariantSetup({**net, "label_input": "class", "num_classes": num_classes}, ClassConditioning(x, y, num_classes))


def continuous_setup(net: dict[str, Any], x: torch.Tensor, u: torch.Tensor, *, vicinity: str, label_input: str, n_bins: int, widths: dict[str, Any]) -> VariantSetup:
    """`vicinity` is "hard", "soft" or "binned"; `widths` holds vicinity_of's m_kappa, gap, sigma, kappa, nu."""
    if vicinity == "binned":
        bins = Bins.of(u, n_bins)
        arch = {**net, "label_input": "class", "num_classes": n_bins, "bins": [float(b) for b in bins.range]}
        return VariantSetup(arch, ClassConditioning(x, bins.classes(u), n_bins))
    vic = vicinity_of(u, vicinity, **widths)
    return VariantSetup({**net, "label_input": label_input}, VicinalConditioning(x, VicinalSampler(u, vic)), vic, {"vicinity": [vic.sigma, vic.kappa, vic.nu]})
