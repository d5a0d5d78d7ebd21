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


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x).argmax(1) == y).float().mean())


def mae(model: nn.Module, ds, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean absolute error in label units of a regressor trained on normalised labels."""
    return float((ds.denormalise(predict(model, x).view(-1)) - y).abs().mean())


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
    arch = dict(ckpt["arch"])
    bins = arch.pop("bins", None)
    G, _ = build_gan(**arch)
    G.load_state_dict(ckpt["state"]["G_ema"])
    if bins is not None:
        G = BinnedGenerator(G, Bins(bins[0], bins[1], arch["num_classes"]))
    return G.eval()


def load_y2h(paths: Paths) -> dict[str, torch.Tensor]:
    """ILI's y2h state dict from the embed stage's output."""
    if not paths.embed.exists():
        raise CheckpointError(f"{paths.embed}: label embedding not found (an ILI variant needs the embed stage first)")
    return load_checkpoint(paths.embed)["y2h"]


def save_grid(images: torch.Tensor, path: Path, nrow: int, scale: int = 4) -> None:
    """Save images in [-1, 1] as a PNG grid (nrow images per row), upscaled for visibility."""
    from torchvision.utils import make_grid, save_image

    grid = make_grid((images.clamp(-1, 1) + 1) / 2, nrow=nrow, padding=1, pad_value=1.0)
    if scale > 1:
        grid = torch.nn.functional.interpolate(grid[None], scale_factor=scale, mode="nearest")[0]
    atomic_write(path, lambda tmp: save_image(grid, tmp, format="png"))


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
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def write_csv(path: Path, history: list[dict[str, float]]) -> None:
    keys = list(history[0]) if history else ["step"]
    lines = [",".join(keys)] + [",".join(f"{r[k]:.6g}" for k in keys) for r in history]
    write_text(path, "\n".join(lines) + "\n")
