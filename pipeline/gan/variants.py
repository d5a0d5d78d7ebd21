"""What one GAN variant trains on: the arguments that build (G, D) and how labels are drawn.

Class labels: a GAN of the kind `gan.kind` (pipeline.gan.kinds), which may keep only a share of
the labels. Continuous labels (normalised to [0, 1]): CcGAN with a
hard or soft vicinity (rule of thumb unless sigma / kappa / nu are given) and NLI or ILI label
input, or the baseline cGAN on labels binned into n_bins classes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from pipeline.gan.binned import Bins
from pipeline.gan.kinds import build_args, get_kind, label_mask
from pipeline.gan.train import ClassConditioning, CodeConditioning, Conditioning, VicinalConditioning
from pipeline.gan.vicinal import VicinalSampler, Vicinity, rule_of_thumb
from pipeline.nets import Y2H, build_gan
from pipeline.params import GanParams


@dataclass
class VariantSetup:
    arch: dict[str, Any]  # build_gan's keyword arguments, plus "bins" (lo, hi) for the binned baseline
    cond: Conditioning
    vicinity: Vicinity | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)  # what else makes a checkpoint differ

    @property
    def build_args(self) -> dict[str, Any]:
        return {k: v for k, v in self.arch.items() if k != "bins"}


def vicinity_of(
    u: torch.Tensor,
    kind: Literal["hard", "soft"],
    m_kappa: float,
    gap: float | None = None,
    sigma: float | None = None,
    kappa: float | None = None,
    nu: float | None = None,
) -> Vicinity:
    """The rule-of-thumb vicinity on normalised training labels u, with optional overrides."""
    s, k, n = rule_of_thumb(u, m_kappa, gap)
    return Vicinity(kind, s if sigma is None else sigma, k if kappa is None else kappa, n if nu is None else nu)


def class_setup(
    p: Any, net: dict[str, Any], x: torch.Tensor, y: torch.Tensor, num_classes: int, seed: int
) -> VariantSetup:
    """A GAN of kind p.kind on images x with class labels y: the kinds that use no labels draw
    codes; with p.label_fraction < 1 (labels kept per class, drawn by `seed`), s3gan sees the other
    images unlabelled (label -1) and the other kinds train on the labelled images only."""
    kind = get_kind(p.kind)
    arch = {**net, **build_args(p, num_classes)}
    if kind.labels == "none":
        return VariantSetup(arch, CodeConditioning(x, num_classes))
    if p.label_fraction < 1:
        keep = label_mask(y, p.label_fraction, seed)
        x, y = (x, torch.where(keep, y, -1)) if kind.labels == "semi" else (x[keep], y[keep])
    return VariantSetup(arch, ClassConditioning(x, y, num_classes))


def continuous_setup(
    net: dict[str, Any],
    x: torch.Tensor,
    u: torch.Tensor,
    *,
    vicinity: Literal["hard", "soft", "binned"],
    label_input: str,
    n_bins: int,
    widths: dict[str, Any],
) -> VariantSetup:
    """`vicinity` is "hard", "soft" or "binned"; `widths` holds vicinity_of's m_kappa, gap, sigma, kappa, nu."""
    if vicinity == "binned":
        bins = Bins.of(u, n_bins)
        arch = {**net, "label_input": "class", "num_classes": n_bins, "bins": [float(b) for b in bins.range]}
        return VariantSetup(arch, ClassConditioning(x, bins.classes(u), n_bins))
    vic = vicinity_of(u, vicinity, **widths)
    return VariantSetup(
        {**net, "label_input": label_input},
        VicinalConditioning(x, VicinalSampler(u, vic)),
        vic,
        {"vicinity": [vic.sigma, vic.kappa, vic.nu]},
    )


def variant_setup(exp, ds, spec, seed: int = 0) -> VariantSetup:
    """The nets and label sampling of one variant of `exp.gan` on the data set ds: spec None is a
    classification experiment's GAN, GanParams one of a ganzoo's, a CcGanVariant one of CcGAN's
    (`seed` draws the kept labels); ILI's label embedding is not loaded here (build_variant does that)."""
    p: Any = spec if isinstance(spec, GanParams) else exp.gan
    net = {
        "arch": p.arch,
        "data_shape": tuple(ds.x_train.shape[1:]),
        "z_dim": p.z_dim,
        "g_width": p.g_width,
        "d_width": p.d_width,
    }
    if p.d_head != "sum":  # only then: checkpoints made before the option keep their build arguments
        net["d_head"] = p.d_head
    if spec is None or isinstance(spec, GanParams):
        return class_setup(p, net, ds.x_train, ds.y_train, ds.num_classes, seed)
    if p.arch == "mlp":
        net |= {"depth": p.depth, "periodic_label": p.periodic_label}
    widths = {"m_kappa": p.m_kappa, "gap": p.label_gap, "sigma": p.sigma, "kappa": p.kappa, "nu": p.nu}
    return continuous_setup(
        net,
        ds.x_train,
        ds.normalise(ds.y_train),
        vicinity=spec.vicinity,
        label_input=spec.label_input,
        n_bins=p.n_bins,
        widths=widths,
    )


def variant_jobs(exp) -> list[tuple[str, Any, Any]]:
    """(name, spec, GAN params) of each GAN an experiment trains: a classification experiment's one
    GAN (spec None), a ganzoo's variants (spec: the variant's GanParams) or CcGAN's (a CcGanVariant,
    under the shared params); spec is what variant_setup and build_variant take."""
    from pipeline.artifacts import CLASS_VARIANT

    p = exp.gan
    if exp.task == "classification":
        return [(CLASS_VARIANT, None, p)]
    if exp.task == "ganzoo":
        return [(v, p.variant(v), p.variant(v)) for v in p.variants]
    return [(v, spec, p) for v, spec in p.variants.items()]


def build_variant(
    exp, ds, spec, load_y2h: Callable[[], dict[str, torch.Tensor]], seed: int = 0
) -> tuple[VariantSetup, torch.nn.Module, torch.nn.Module, dict]:
    """A fresh (G, D) for one variant (spec None: the class-conditional GAN), its label sampling
    and what besides params identifies its checkpoint (ILI: the y2h weights from load_y2h(),
    loaded into G and D). The gan stage and the vicinity study share it."""
    setup = variant_setup(exp, ds, spec, seed)
    G, D = build_gan(**setup.build_args)
    extra = dict(setup.fingerprint)
    if setup.arch["label_input"] == "ili":
        y2h_state = load_y2h()
        for m in [*G.modules(), *D.modules()]:  # the frozen y2h copies inside G and D
            if isinstance(m, Y2H):
                m.load_state_dict(y2h_state)
        extra["y2h"] = hashlib.sha256(b"".join(t.numpy().tobytes() for t in y2h_state.values())).hexdigest()[:16]
    return setup, G, D, extra
