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
from pathlib import Path
from typing import Any, Literal

import torch

from pipeline.errors import ParamsError
from pipeline.gan.binned import BinnedConditioning, Bins
from pipeline.gan.encoders import encoder_dim, encoder_file, load_encoder
from pipeline.gan.kd_dlgan import KdDlGan, class_prototypes
from pipeline.gan.kinds import Objective, build_args, get_kind, label_mask, objective
from pipeline.gan.train import ClassConditioning, CodeConditioning, Conditioning, VicinalConditioning
from pipeline.gan.vicinal import VicinalSampler, Vicinity, rule_of_thumb
from pipeline.nets import Y2H, build_gan
from pipeline.params import GanParams

DATA_SEED = 7919  # offset of the seed that draws gan.data_fraction's images from the one of the kept labels


@dataclass
class VariantSetup:
    arch: dict[str, Any]  # build_gan's keyword arguments, plus "bin_edges" for the binned baseline
    cond: Conditioning
    vicinity: Vicinity | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)  # what else makes a checkpoint differ
    objective: Objective | None = None  # set by build_variant

    @property
    def build_args(self) -> dict[str, Any]:
        return {k: v for k, v in self.arch.items() if k != "bin_edges"}


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


def gan_images(p: Any, x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The images (and labels) a class-label GAN may see: p.data_fraction of each class's, drawn
    with a seed apart from the kept labels' so that the two draws are independent."""
    if p.data_fraction == 1:
        return x, y
    keep = label_mask(y, p.data_fraction, seed + DATA_SEED)
    return x[keep], y[keep]


def class_setup(
    p: Any, net: dict[str, Any], x: torch.Tensor, y: torch.Tensor, num_classes: int, seed: int
) -> VariantSetup:
    """A GAN of kind p.kind on images x with class labels y: with p.data_fraction < 1 on that share
    of each class's images only; the kinds that use no labels draw codes; with p.label_fraction < 1
    (labels kept per class, drawn by `seed`), s3gan sees the other images unlabelled (label -1) and
    the other kinds train on the labelled images only."""
    kind = get_kind(p.kind)
    arch = {**net, **build_args(p, num_classes)}
    x, y = gan_images(p, x, y, seed)
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
        try:
            bins = Bins.of(u, n_bins)
        except ValueError as err:
            raise ParamsError(f"gan.n_bins: {err}") from None
        edges = [float(e) for e in bins.edges]
        arch = {**net, "label_input": "class", "num_classes": n_bins, "bin_edges": edges}
        return VariantSetup(arch, BinnedConditioning(x, bins.classes(u), n_bins), fingerprint={"bin_edges": edges})
    vic = vicinity_of(u, vicinity, **widths)
    return VariantSetup(
        {**net, "label_input": label_input},
        VicinalConditioning(x, VicinalSampler(u, vic)),
        vic,
        # fake labels uniform on the window cut to [0, 1]: checkpoints trained with the earlier
        # clipped draw are trained again, not resumed
        {"vicinity": [vic.sigma, vic.kappa, vic.nu], "fake_labels": "cut_window"},
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
        if p.d_depth is not None:  # only then: checkpoints made before the option keep their build arguments
            net["d_depth"] = p.d_depth
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
    exp,
    ds,
    spec,
    load_y2h: Callable[[], dict[str, torch.Tensor]],
    seed: int = 0,
    own_encoder: Path | None = None,
) -> tuple[VariantSetup, torch.nn.Module, torch.nn.Module, dict]:
    """A fresh (G, D) for one variant (spec None: the class-conditional GAN), its label sampling,
    its objective (setup.objective: the kind's, with KD-DLGAN's terms when gan.kd_dlgan is set) and
    what besides params identifies its checkpoint (ILI: the y2h weights from load_y2h(), loaded
    into G and D; KD-DLGAN: the encoder file, `own_encoder` for the encoder 'teacher'). The gan
    stage, the vicinity study and bench-gan share it."""
    setup = variant_setup(exp, ds, spec, seed)
    p: Any = spec if isinstance(spec, GanParams) else exp.gan
    num_classes = setup.arch.get("num_classes", 0) if spec is None or isinstance(spec, GanParams) else 0
    setup.objective = objective(p, num_classes)
    extra = dict(setup.fingerprint)
    if getattr(p, "kd_dlgan", None) is not None:
        kd = p.kd_dlgan
        path = encoder_file(kd, own_encoder)
        encoder, text = load_encoder(kd, path, ds.channels, ds.class_names)
        assert isinstance(setup.cond, ClassConditioning)  # kd_dlgan is refused for continuous labels
        # the class means of the images the GAN sees, at the labels it has (no-label kinds: the true ones)
        x, y = (setup.cond.x, setup.cond.y)
        if get_kind(p.kind).labels == "none":
            x, y = gan_images(p, ds.x_train, ds.y_train, seed)
        prototypes = text if text is not None else class_prototypes(encoder, x, y, ds.num_classes)
        setup.arch["d_features"] = encoder_dim(encoder, tuple(ds.x_train.shape[1:]))
        setup.objective = KdDlGan(
            setup.objective, encoder, prototypes, agkd_weight=kd.agkd, cgkd_weight=kd.cgkd, p=kd.p
        )
        extra["encoder"] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    G, D = build_gan(**setup.build_args)
    if setup.arch["label_input"] == "ili":
        y2h_state = load_y2h()
        for m in [*G.modules(), *D.modules()]:  # the frozen y2h copies inside G and D
            if isinstance(m, Y2H):
                m.load_state_dict(y2h_state)
        extra["y2h"] = hashlib.sha256(b"".join(t.numpy().tobytes() for t in y2h_state.values())).hexdigest()[:16]
    return setup, G, D, extra
