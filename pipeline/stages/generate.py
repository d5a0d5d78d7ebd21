"""`cgankd generate`: fakes from a trained GAN at the labels a user names, outside the DVC pipeline.

Labels are in the data set's own units: class ids for a classification experiment; for continuous
labels the label's units (degrees for chairs, radians for the circle), inside the label range the
GAN was conditioned on (CcGAN normalises it to [0, 1] and does not extrapolate). The generator is
the gan stage's checkpoint of a variant (default: the experiment's subsampled one,
`dre.gan_variant`) or any checkpoint in that format. With `subsampling` dre or cdre the fakes are
drawn by rejection sampling through the dre stage's ratio nets, which were trained on the fakes of
`dre.gan_variant` only.

Writes <out>.pt (x; y in label units) and a picture <out>.png: for images a grid with one row per
label, in the order given (a label that rejection sampling left short is padded with black); for
the circle the points over the unit circle, coloured by label. Nothing is written unless every
fake was drawn.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from pipeline.artifacts import CLASS_VARIANT, Paths, load_generator, load_subsampler
from pipeline.data import load_dataset, training_label_grid
from pipeline.data.circle import circle_centres
from pipeline.errors import CheckpointError, ParamsError
from pipeline.figures import save_figure, save_grid
from pipeline.params import Params
from pipeline.subsample.subsampler import METHODS, draw
from pipeline.ui import info, progress_bar
from pipeline.utils import label_positions, save_torch, seed_everything

DEFAULT_LABELS = 10  # continuous labels when none are given: evenly spaced over the training range


def _label_text(v: float) -> str:
    return f"{v:g}"


def check_labels(exp, ds, labels: list[float] | None, experiment: str) -> torch.Tensor:
    """The labels as G takes them (class ids; normalised continuous labels), after checking them:
    a class must be one of the data set's, a continuous label inside its label range. None: every
    class, or DEFAULT_LABELS evenly spaced over the training labels' range."""
    if exp.task in ("classification", "ganzoo"):
        if labels is None:
            return torch.arange(ds.num_classes)
        for v in labels:
            if not math.isfinite(v) or v != int(v) or not 0 <= v < ds.num_classes:
                raise ParamsError(f"--label {_label_text(v)}: not a class of {experiment} (0..{ds.num_classes - 1})")
        return torch.tensor([int(v) for v in labels])
    if labels is None:
        return training_label_grid(ds, DEFAULT_LABELS)
    slack = 1e-6 * (ds.label_max - ds.label_min)
    for v in labels:
        if not (math.isfinite(v) and ds.label_min - slack <= v <= ds.label_max + slack):
            raise ParamsError(
                f"--label {_label_text(v)}: outside {experiment}'s label range [{ds.label_min:g}, "
                f"{ds.label_max:g}] ({ds.label_name})"
            )
    return ds.normalise(torch.tensor(labels, dtype=torch.float32)).clamp(0, 1)


def _unique(wanted: torch.Tensor, labels: list[float]) -> None:
    """Each label once (as G takes it: two values equal in float32 are one label)."""
    values, counts = torch.unique(wanted, return_counts=True)
    if (counts > 1).any():
        twice = labels[int((wanted == values[counts > 1][0]).nonzero()[1, 0])]
        raise ParamsError(f"--label {_label_text(twice)} given twice")


def _generator_path(
    exp, paths: Paths, experiment: str, variant: str | None, generator: Path | None, subsampling: str
) -> tuple[Path, str | None]:
    """The checkpoint to load and its variant name (None for a user's own file), after checking that
    the subsampling method's ratio nets belong to it."""
    if subsampling not in METHODS:
        raise ParamsError(f"--subsample {subsampling!r}: use {', '.join(METHODS)}")
    if variant is not None and generator is not None:
        raise ParamsError("give --variant or --generator, not both")
    if exp.task == "ganzoo":
        if subsampling != "none":
            raise ParamsError(f"--subsample {subsampling}: a ganzoo experiment has no ratio nets (no dre stage)")
        subsampled = None
    else:  # the variant whose fakes the ratio nets saw
        subsampled = CLASS_VARIANT if exp.task == "classification" else exp.dre_variant
    if generator is None:
        known = (CLASS_VARIANT,) if exp.task == "classification" else tuple(exp.gan.variants)
        variant = variant or subsampled or known[0]
        if variant not in known:
            raise ParamsError(f"--variant {variant!r}: not a GAN variant of {experiment} ({', '.join(known)})")
        generator = paths.generator(variant)
        if not generator.is_file():
            raise CheckpointError(f"{generator}: generator checkpoint not found (run the gan stage first)")
    elif not generator.is_file():
        raise CheckpointError(f"{generator}: generator checkpoint not found")
    if subsampling != "none" and variant != subsampled:
        raise ParamsError(
            f"--subsample {subsampling}: the dre stage's ratio nets were trained on the fakes of "
            f"{subsampled!r}, not of "
            f"{variant or str(generator)!r}; for another generator use `cgankd subsample`"
        )
    return generator, variant


def _rows(x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor, n: int) -> torch.Tensor:
    """n images per label in the order of `labels`, a short label padded with black (-1)."""
    out = torch.full((len(labels) * n, *x.shape[1:]), -1.0)
    for i, lab in enumerate(labels):
        got = x[y == lab][:n]
        out[i * n : i * n + len(got)] = got.float()
    return out


def save_circle_picture(x: torch.Tensor, y: torch.Tensor, path: Path, title: str) -> None:
    """The 2-D fakes over the unit circle, coloured by their label (an angle), each label's Gaussian
    centre marked with a cross."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    t = torch.linspace(0, 2 * math.pi, 361)
    ax.plot(t.cos(), t.sin(), color="0.8", lw=1, zorder=0)
    points = ax.scatter(x[:, 0], x[:, 1], c=y, cmap="hsv", vmin=0, vmax=2 * math.pi, s=4)
    centres = circle_centres(torch.unique(y))
    ax.scatter(centres[:, 0], centres[:, 1], c="k", marker="x", s=30, lw=1)
    fig.colorbar(points, ax=ax, shrink=0.7, label="label (angle, radians)")
    ax.set_aspect("equal")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)


def run(
    params: Params,
    experiment: str,
    paths: Paths,
    *,
    out: Path,
    labels: list[float] | None = None,
    n_per_label: int = 8,
    variant: str | None = None,
    generator: Path | None = None,
    subsampling: str = "none",
    seed: int | None = None,
) -> dict:
    exp = params.experiment(experiment)
    if exp.task == "translation":
        raise ParamsError(f"experiments.{experiment}: a translation experiment maps images: use cgankd translate")
    ds = load_dataset(paths.prepared)
    path, variant = _generator_path(exp, paths, experiment, variant, generator, subsampling)
    wanted = check_labels(exp, ds, labels, experiment)
    if labels is not None:
        _unique(wanted, labels)
    G = load_generator(path)
    sub = load_subsampler(paths, subsampling)
    dre = getattr(exp, "dre", None)  # a ganzoo experiment has none (and no subsampling)
    z_dim = exp.gan.variant(variant).z_dim if exp.task == "ganzoo" and variant else exp.gan.z_dim
    seed_everything(params.seed if seed is None else seed)
    with progress_bar(
        f"generate[{experiment}] {variant or path.name} ({subsampling})", len(wanted) * n_per_label
    ) as bar:
        x, y, stats = draw(
            G,
            z_dim,
            wanted,
            n_per_label,
            sub,
            burnin=dre.burnin if dre else 0,
            batch_size=dre.batch_size_rs if dre else 1000,
            progress=bar,
        )
    # labels back in the data set's units: the user's own values (not a float round trip of them)
    if exp.task in ("classification", "ganzoo"):
        shown = wanted
    else:
        shown = ds.denormalise(wanted) if labels is None else torch.tensor(labels)
    y_out = shown[label_positions(wanted, y)]
    counts = [int((y == lab).sum()) for lab in wanted]
    report = {
        "generator": str(path),
        "variant": variant,
        "subsampling": subsampling,
        "labels": [float(v) for v in shown],
        "n_per_label": counts,
    }
    if stats is not None:
        report["acceptance_rate"] = stats.summary()["acceptance_rate"]
    save_torch({"x": x, "y": y_out, **{k: v for k, v in report.items() if k != "generator"}}, out.with_suffix(".pt"))
    if exp.task != "circle":
        save_grid(_rows(x, y, wanted, n_per_label), out.with_suffix(".png"), nrow=n_per_label)
    else:
        save_circle_picture(x, y_out, out.with_suffix(".png"), f"{experiment}: {variant or path.name} ({subsampling})")
    short = sum(c < n_per_label for c in counts)
    info(
        f"generate[{experiment}]: {len(x)} fakes at {len(wanted)} labels "
        f"({', '.join(_label_text(v) for v in report['labels'])})"
        + (f", {short} label(s) short" if short else "")
        + f" -> {out.with_suffix('.pt')}, {out.with_suffix('.png')}"
    )
    return report
