"""What the stages share: where outputs go, saving/loading nets, images and JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.checkpoint import load_checkpoint, save_checkpoint
from pipeline.errors import CheckpointError
from pipeline.utils import atomic_write, predict
from pipeline.gan.binned import Bins, BinnedGenerator
from pipeline.nets import build_classifier, build_gan


CLASS_VARIANT = "cgan"  # the one GAN of a classification experiment: models/<exp>/gan/cgan.pt


@dataclass(frozen=True)
class Paths:
    """Every output of one experiment, relative to the repository root."""

    experiment: str
    root: Path = Path(".")

    @property
    def prepared(self) -> Path:
        return self.root / "data" / self.experiment / "prepared"

    @property
    def synthetic(self) -> Path:
        return self.root / "data" / self.experiment / "synthetic"

    @property
    def teacher(self) -> Path:
        return self.root / "models" / self.experiment / "teacher.pt"

    @property
    def embed(self) -> Path:
        return self.root / "models" / self.experiment / "embed.pt"

    @property
    def features(self) -> Path:
        """DRE's feature extractor."""
        return self.root / "models" / self.experiment / "features.pt"

    @property
    def dre(self) -> Path:
        """The density-ratio nets (DRE-F-SP and cDRE-F-cSP) of one GAN variant."""
        return self.root / "models" / self.experiment / "dre.pt"

    @property
    def eval_nets(self) -> Path:
        """The evaluation regressor (and attribute classifier) of an image-regression experiment."""
        return self.root / "models" / self.experiment / "eval_nets"

    @property
    def gan(self) -> Path:
        return self.root / "models" / self.experiment / "gan"

    @property
    def students(self) -> Path:
        return self.root / "models" / self.experiment / "students"

    @property
    def metrics(self) -> Path:
        """Per-stage metrics and plot data (tracked by DVC, small, committed)."""
        return self.root / "metrics" / self.experiment

    @property
    def summary_json(self) -> Path:
        return self.root / "metrics" / f"{self.experiment}.json"

    @property
    def summary_md(self) -> Path:
        return self.root / "metrics" / f"{self.experiment}.md"

    @property
    def headline(self) -> Path:
        """The few numbers `dvc metrics show` prints for this experiment (the same keys in every one)."""
        return self.metrics / "headline.json"


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x).argmax(1) == y).float().mean())


def mae(model: nn.Module, ds, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean absolute error in label units of a regressor trained on normalised labels."""
    return float((ds.denormalise(predict(model, x).view(-1)) - y).abs().mean())


def validation_score(task: str, ds):
    """The score a trainer keeps the best weights by (higher is better): validation accuracy, or
    minus the validation MAE in label units; None without a validation split."""
    if not len(ds.y_val):
        return None
    if task == "classification":
        return lambda model: accuracy(model, ds.x_val, ds.y_val)
    return lambda model: -mae(model, ds, ds.x_val, ds.y_val)


def best_step(history: list[dict[str, float]]) -> dict[str, float]:
    """{"best_step": ...} when the training kept its best validation weights, else {}."""
    return {"best_step": history[-1]["best_step"]} if history and "best_step" in history[-1] else {}


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def save_classifier(model: nn.Module, path: Path, *, net: str, in_channels: int, num_classes: int, width: int) -> None:
    arch = {"net": net, "in_channels": in_channels, "num_classes": num_classes, "width": width}
    save_checkpoint({"arch": arch, "model": model.state_dict()}, path)


def load_classifier(path: Path) -> nn.Module:
    ckpt = load_checkpoint(path)
    a = ckpt["arch"]
    model = build_classifier(a["net"], a["in_channels"], a["num_classes"], a["width"])
    model.load_state_dict(ckpt["model"])
    return model.eval()


def load_generator(path: Path) -> nn.Module:
    """The EMA generator of a GAN checkpoint written by the gan stage, in eval mode, as G(z, y).

    The checkpoint records the arguments that built it (`arch`), so no params are needed; a
    binned-label baseline comes back wrapped so that it takes continuous labels too."""
    ckpt = load_checkpoint(path)
    if "arch" not in ckpt or "G_ema" not in ckpt.get("state", {}):
        raise CheckpointError(f"{path}: not a generator checkpoint (needs the build arguments `arch` and `state.G_ema`, as the gan stage writes)")
    arch = dict(ckpt["arch"])
    bins = arch.pop("bins", None)
    G, _ = build_gan(**arch)
    G.load_state_dict(ckpt["state"]["G_ema"])
    if bins is not None:
        G = BinnedGenerator(G, Bins(bins[0], bins[1], arch["num_classes"]))
    return G.eval()


def save_features(model: nn.Module, path: Path, *, kind: str, arch: dict) -> None:
    """kind "classifier" (arch as save_classifier's) or "autoencoder" (SparseAutoencoder's args)."""
    save_checkpoint({"kind": kind, "arch": arch, "model": model.state_dict()}, path)


def load_features(path: Path) -> nn.Module:
    """DRE's feature extractor (features(x) -> h; forward(x) -> label prediction for the autoencoder)."""
    from pipeline.subsample.autoencoder import SparseAutoencoder

    if not path.exists():
        raise CheckpointError(f"{path}: feature extractor not found (run the features stage first)")
    ckpt = load_checkpoint(path)
    a = ckpt["arch"]
    if ckpt["kind"] == "autoencoder":
        model = SparseAutoencoder(tuple(a["data_shape"]), a["code_dim"], a["width"])
    else:
        model = build_classifier(a["net"], a["in_channels"], a["num_classes"], a["width"])
    model.load_state_dict(ckpt["model"])
    return model.eval()


def load_subsampler(paths: Paths, method: str):
    """The Subsampler of `method` ("dre" or "cdre") from the features and dre stages' outputs, or
    None for "none"."""
    from pipeline.subsample.ratio import RatioNet
    from pipeline.subsample.subsampler import Subsampler

    if method == "none":
        return None
    if not paths.dre.exists():
        raise CheckpointError(f"{paths.dre}: density-ratio nets not found (run the dre stage first)")
    ckpt = load_checkpoint(paths.dre)
    entry = ckpt["nets"][method]
    net = RatioNet(**entry["arch"])
    net.load_state_dict(entry["model"])
    return Subsampler(load_features(paths.features), net.eval(), ckpt["zeta"])


def evaluation_labels(exp, ds) -> torch.Tensor:
    """The labels fakes are evaluated (and subsampled) at, as G takes them: every class; for a
    regression set, evaluate.n_labels evenly spaced over the training range (normalised); for
    the circle, its unseen evaluation angles (normalised)."""
    if exp.task == "classification":
        return torch.arange(ds.num_classes)
    if exp.task == "circle":
        return ds.normalise(torch.unique(ds.y_test))
    return training_label_grid(ds, exp.evaluate.n_labels)


def training_label_grid(ds, n: int) -> torch.Tensor:
    """n labels evenly spaced over the training labels' range, normalised as G takes them."""
    return ds.normalise(torch.linspace(float(ds.y_train.min()), float(ds.y_train.max()), n))


def load_y2h(paths: Paths) -> dict[str, torch.Tensor]:
    """ILI's y2h state dict from the embed stage's output."""
    if not paths.embed.exists():
        raise CheckpointError(f"{paths.embed}: label embedding not found (an ILI variant needs the embed stage first)")
    return load_checkpoint(paths.embed)["y2h"]


def tile(images: torch.Tensor, nrow: int, pad: int = 1, value: float = 1.0) -> torch.Tensor:
    """(N, C, H, W) -> (C, H', W'): nrow images per row, each framed by `pad` pixels of `value`
    (the layout of torchvision's make_grid, without importing torchvision: that takes seconds)."""
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    cells = torch.full((rows * cols, c, h + pad, w + pad), value, dtype=images.dtype)
    cells[:n, :, pad:, pad:] = images
    grid = cells.view(rows, cols, c, h + pad, w + pad).permute(2, 0, 3, 1, 4).reshape(c, rows * (h + pad), cols * (w + pad))
    return torch.nn.functional.pad(grid, (0, pad, 0, pad), value=value)


def save_grid(images: torch.Tensor, path: Path, nrow: int, scale: int = 4) -> None:
    """Save images in [-1, 1] as a PNG grid (nrow images per row), upscaled for visibility."""
    from PIL import Image

    grid = tile((images.detach().float().cpu().clamp(-1, 1) + 1) / 2, nrow)
    if scale > 1:
        grid = grid.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    pixels = (grid * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    atomic_write(path, lambda tmp: image.save(tmp, format="png"))


def save_split_grid(rows: list[tuple[torch.Tensor, torch.Tensor]], path: Path, n: int = 8) -> None:
    """One row per (left, right) pair of image batches: n left images | a white gap | n right ones,
    padded with black (e.g. kept vs dropped fakes of one label)."""
    shape = next(t.shape[1:] for pair in rows for t in pair if len(t)) if any(len(t) for p in rows for t in p) else None
    if shape is None:
        return
    pad = lambda t: torch.cat([t[:n], torch.full((n - len(t[:n]), *shape), -1.0)])  # noqa: E731
    cells = [torch.cat([pad(left), torch.ones(1, *shape), pad(right)]) for left, right in rows]
    save_grid(torch.cat(cells), path, nrow=2 * n + 1)


def save_curves(curves: dict[str, tuple[list[float], list[float]]], path: Path, title: str, xlabel: str = "step") -> None:
    """A PNG line plot, one line per entry: label -> (xs, ys)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=label)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path: Path, **savefig) -> None:
    """Write a matplotlib figure as a PNG (100 dpi) atomically, then close it."""
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, **savefig))
    plt.close(fig)


HEADLINE = {  # task -> (what the teacher and students are scored by, the GAN metric and its summary key)
    "classification": ("test accuracy", "FID (teacher features)", "fid_teacher_features"),
    "regression": ("test MAE", "intra-FID (eval regressor)", "intra_fid_eval_regressor_features"),
    "circle": (None, "W2", "w2"),
}


def headline(task: str, summary: dict, dre_variant: str) -> dict:
    """The experiment's summary cut to the same few keys in every experiment, so that `dvc metrics
    show` prints one readable row each: the teacher's and two students' test scores with cGAN-KD's
    gain over real only (positive: better), and the GAN metric of the subsampled variant without
    and with cDRE-F-cSP+RS (on the labels both filled) with its acceptance rate. Keys an experiment
    has no value for are left out (dvc shows "-")."""
    score, gan_metric, key = HEADLINE[task]
    row: dict = {"task": task, "gan_metric": gan_metric}
    equal = summary.get("gan_equal_labels") or summary["gan"]
    for name, variant in (("gan", dre_variant), ("gan_cdre", f"{dre_variant}+cdre")):
        if key in equal.get(variant, {}):
            row[name] = equal[variant][key]
    if "acceptance_rate" in summary["gan"].get(f"{dre_variant}+cdre", {}):
        row["cdre_acceptance"] = summary["gan"][f"{dre_variant}+cdre"]["acceptance_rate"]
    if score is None:
        return row
    metric = "test_accuracy" if task == "classification" else "test_mae"
    students = summary["students"]
    row.update(score=score, teacher=summary["teacher"][metric])
    row.update({v: students[v][metric] for v in ("real_only", "cgan_kd") if v in students})
    if "real_only" in row and "cgan_kd" in row:
        row["cgan_kd_gain"] = (row["cgan_kd"] - row["real_only"]) * (1 if task == "classification" else -1)
    return row


def gan_table(gan: dict[str, dict[str, float]]) -> list[str]:
    """Markdown rows: one per GAN variant (and subsampling method), one column per metric."""
    keys = list(dict.fromkeys(k for m in gan.values() for k in m))
    lines = ["| GAN | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    return lines + [f"| {v} | " + " | ".join(f"{m[k]:.4g}" if k in m else "-" for k in keys) + " |" for v, m in gan.items()]


def equal_labels_text(gan: dict[str, dict[str, float]], equal: dict[str, dict[str, float]]) -> list[str]:
    """Markdown: the subsampled variant's rows on the labels every row filled, when some row left
    labels short (otherwise the main table already compares them on equal terms)."""
    if not any(gan.get(v, {}).get("labels_short") for v in equal):
        return []
    n = next(iter(equal.values()))["n_labels"]
    if not n:
        return ["No label was filled by every subsampled row: no equal-label comparison.", ""]
    return [f"The same rows on the {n} labels that every one of them filled (rejection sampling left the others short):", "",
            *gan_table({v: {k: x for k, x in r.items() if k != "n_labels"} for v, r in equal.items()}), ""]


def variant_rows(exp, paths: Paths, experiment: str, variant: str, labels: torch.Tensor, n: int, metrics_of) -> tuple[dict, dict]:
    """metrics_of(x, y, keep) of n fakes per label of one GAN variant (row "<variant>"; `keep` is a
    boolean mask over `labels`: the labels the fakes x, y were drawn at); for the variant the dre
    stage subsampled, also of its DRE-F-SP+RS and cDRE-F-cSP+RS fakes (rows "<variant>+dre",
    "<variant>+cdre", with the acceptance rate and the labels left short).

    Returns (rows, equal_rows). equal_rows holds the subsampled variant's rows again, measured only
    on the labels that every one of its rows filled (all n fakes), with their number `n_labels`:
    rejection sampling leaves the hard labels short, and a row scored on the easier labels alone
    is not comparable to one scored on all of them. It is {} for any other variant."""
    from pipeline.subsample.subsampler import METHODS, draw
    from pipeline.ui import progress_bar

    G = load_generator(paths.gan / f"{variant}.pt")
    rows, drawn = {}, {}
    everything = torch.ones(len(labels), dtype=torch.bool)
    for method in METHODS if variant == exp.dre_variant else ("none",):
        with progress_bar(f"evaluate[{experiment}] {variant} fakes ({method})", len(labels) * n) as bar:
            x, y, stats = draw(G, exp.gan.z_dim, labels, n, load_subsampler(paths, method), burnin=exp.dre.burnin, batch_size=exp.dre.batch_size_rs, progress=bar)
        row = metrics_of(x, y, everything)
        if stats is not None:
            summary = stats.summary()
            row["acceptance_rate"] = summary["acceptance_rate"]
            row["labels_short"] = summary["n_labels_short"]
        name = variant if method == "none" else f"{variant}+{method}"
        rows[name], drawn[name] = row, (x, y)
    return rows, equal_label_rows(drawn, rows, labels, n, metrics_of) if variant == exp.dre_variant else {}


def equal_label_rows(drawn: dict[str, tuple[torch.Tensor, torch.Tensor]], rows: dict[str, dict], labels: torch.Tensor, n: int, metrics_of) -> dict[str, dict]:
    """Each row's metrics on the labels that every row of `drawn` (name -> fakes x, y grouped by
    label) filled with n fakes, with their number `n_labels`: reused from `rows` when no label was
    left short, measured again on the common labels when some were, empty (but n_labels 0) when none is common."""
    from pipeline.metrics import counts_by_label

    filled = torch.stack([counts_by_label(y, labels) >= n for _, y in drawn.values()]).all(0)
    equal = {}
    for name, (x, y) in drawn.items():
        if not bool(filled.any()):
            row = {}
        elif bool(filled.all()):
            row = {k: v for k, v in rows[name].items() if k not in ("acceptance_rate", "labels_short")}
        else:
            keep = torch.isin(y, labels[filled])
            row = metrics_of(x[keep], y[keep], filled)
        equal[name] = {**row, "n_labels": int(filled.sum())}
    return equal


def write_csv(path: Path, history: list[dict[str, float]]) -> None:
    keys = list(history[0]) if history else ["step"]
    lines = [",".join(keys)] + [",".join(f"{r[k]:.6g}" for k in keys) for r in history]
    write_text(path, "\n".join(lines) + "\n")
