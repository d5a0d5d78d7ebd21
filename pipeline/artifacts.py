"""The on-disk contract: where every artefact of an experiment lives, and the one save / load
function of each artefact kind. Stages, studies, `generate`, `subsample`, `repeat` and `bench`
all go through it; nothing else knows a file name or a checkpoint's keys."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.checkpoint import load_checkpoint, save_checkpoint
from pipeline.errors import CheckpointError, DataError
from pipeline.gan.binned import BinnedGenerator, Bins
from pipeline.nets import build_classifier, build_gan
from pipeline.nets.backbone import Backbone
from pipeline.runtime import channels_last
from pipeline.utils import atomic_write, save_torch

CLASS_VARIANT = "cgan"  # the one GAN of a classification experiment: models/<exp>/gan/cgan.pt
FAKES = "fakes.pt"  # the synthetic set's tensors, in data/<exp>/synthetic/


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
    def fakes(self) -> Path:
        """The synthetic set's tensors."""
        return self.synthetic / FAKES

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
    def kd_teacher(self) -> Path:
        """A ganzoo's KD-DLGAN encoder, trained by its gan stage (kept with the GANs)."""
        return self.gan / "kd_teacher.pt"

    def generator(self, variant: str) -> Path:
        return self.gan / f"{variant}.pt"

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


# JSON, text and CSV


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_csv(path: Path, history: list[dict[str, float]]) -> None:
    keys = list(history[0]) if history else ["step"]
    lines = [",".join(keys)] + [",".join(f"{r[k]:.6g}" for k in keys) for r in history]
    write_text(path, "\n".join(lines) + "\n")


# classifiers and regressors (teacher, students, DRE's classifier features, evaluation nets)


def save_classifier(
    model: nn.Module,
    path: Path,
    *,
    net: str,
    in_channels: int,
    num_classes: int,
    width: int,
    config: str | None = None,
) -> None:
    """A classifier checkpoint: its build arguments and weights (and, when given, the config
    that made it, for a stage that retrains only when that changes)."""
    arch = {"net": net, "in_channels": in_channels, "num_classes": num_classes, "width": width}
    save_checkpoint({"arch": arch, "model": model.state_dict(), **({"config": config} if config else {})}, path)


def classifier_arch(path: Path) -> dict[str, Any]:
    """The build arguments recorded in a classifier checkpoint."""
    return load_checkpoint(path)["arch"]


def load_classifier(path: Path) -> Backbone:
    ckpt = load_checkpoint(path)
    a = ckpt["arch"]
    model = build_classifier(a["net"], a["in_channels"], a["num_classes"], a["width"])
    model.load_state_dict(ckpt["model"])
    return model.eval()


# GANs


def save_gan(path: Path, *, config: str, arch: dict[str, Any], state: dict[str, Any]) -> None:
    """A GAN checkpoint: the config that made it (a rerun resumes only under the same one), the
    arguments that build G and the training state (G, D, G_ema, optimisers, step, history, RNG)."""
    save_checkpoint({"config": config, "arch": arch, "state": state}, path)


def load_gan(path: Path) -> dict[str, Any]:
    """A GAN checkpoint as save_gan wrote it."""
    return load_checkpoint(path)


def load_generator(path: Path) -> nn.Module:
    """The EMA generator of a GAN checkpoint written by the gan stage, in eval mode, as G(z, y).

    The checkpoint records the arguments that built it (`arch`), so no params are needed; a
    binned-label baseline comes back wrapped so that it takes continuous labels too."""
    ckpt = load_checkpoint(path)
    if "arch" not in ckpt or "G_ema" not in ckpt.get("state", {}):
        raise CheckpointError(
            f"{path}: not a generator checkpoint (needs the build arguments `arch` and `state.G_ema`, as the "
            "gan stage writes)"
        )
    arch = dict(ckpt["arch"])
    if "bins" in arch:
        raise CheckpointError(
            f"{path}: a binned baseline with evenly spaced bins, from before equal-count bins: retrain it"
        )
    edges = arch.pop("bin_edges", None)
    G, _ = build_gan(**arch)
    G.load_state_dict(ckpt["state"]["G_ema"])
    if edges is not None:
        G = BinnedGenerator(G, Bins(edges))
    return channels_last(G).eval()


def load_discriminator(path: Path) -> nn.Module:
    """The discriminator of a GAN checkpoint written by the gan stage, in eval mode, as D(x, y)."""
    ckpt = load_checkpoint(path)
    if "arch" not in ckpt or "D" not in ckpt.get("state", {}):
        raise CheckpointError(f"{path}: not a GAN checkpoint (needs `arch` and `state.D`, as the gan stage writes)")
    arch = {k: v for k, v in ckpt["arch"].items() if k not in ("bins", "bin_edges")}
    _, D = build_gan(**arch)
    D.load_state_dict(ckpt["state"]["D"])
    return D.eval()


def load_translator(path: Path, direction: str) -> nn.Module:
    """One generator of a CycleGAN checkpoint (the translation gan stage's): "AtoB" is G, "BtoA" is
    F; in eval mode, images in, images out."""
    from pipeline.nets.cyclegan import generator

    if not path.exists():
        raise CheckpointError(f"{path}: CycleGAN checkpoint not found (run the gan stage first)")
    ckpt = load_checkpoint(path)
    key = {"AtoB": "G_ab", "BtoA": "G_ba"}.get(direction)
    if key is None:
        raise ValueError(f"direction must be AtoB or BtoA, got {direction!r}")
    if "arch" not in ckpt or key not in ckpt.get("state", {}):
        raise CheckpointError(f"{path}: not a CycleGAN checkpoint (needs `arch` and `state.{key}`)")
    G = generator(ckpt["arch"])
    G.load_state_dict(ckpt["state"][key])
    return G.eval()


# ILI's label embedding


def save_embedding(path: Path, *, y2h: nn.Module, net: nn.Module) -> None:
    save_checkpoint({"y2h": y2h.state_dict(), "net": net.state_dict()}, path)


def load_y2h(paths: Paths) -> dict[str, torch.Tensor]:
    """ILI's y2h state dict from the embed stage's output."""
    if not paths.embed.exists():
        raise CheckpointError(f"{paths.embed}: label embedding not found (an ILI variant needs the embed stage first)")
    return load_checkpoint(paths.embed)["y2h"]


# density-ratio subsampling


def save_features(model: nn.Module, path: Path, *, kind: str, arch: dict) -> None:
    """kind "classifier" (arch as save_classifier's) or "autoencoder" (SparseAutoencoder's args)."""
    save_checkpoint({"kind": kind, "arch": arch, "model": model.state_dict()}, path)


def load_features(path: Path) -> Backbone:
    """DRE's feature extractor (features(x) -> h; forward(x) -> label prediction for the autoencoder)."""
    from pipeline.subsample.autoencoder import SparseAutoencoder

    if not path.exists():
        raise CheckpointError(f"{path}: feature extractor not found (run the features stage first)")
    ckpt = load_checkpoint(path)
    a = ckpt["arch"]
    if ckpt["kind"] == "autoencoder":
        model: Backbone = SparseAutoencoder(tuple(a["data_shape"]), a["code_dim"], a["width"])
    else:
        model = build_classifier(a["net"], a["in_channels"], a["num_classes"], a["width"])
    model.load_state_dict(ckpt["model"])
    return channels_last(model).eval()


def save_dre(path: Path, *, gan_variant: str, zeta: float | None, nets: dict[str, dict]) -> None:
    """The ratio nets of one GAN variant (method -> {"arch", "model"}) and the label window zeta."""
    save_checkpoint({"gan_variant": gan_variant, "zeta": zeta, "nets": nets}, path)


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


# the synthetic set of cGAN-KD


def save_synthetic(paths: Paths, tensors: dict[str, torch.Tensor | float]) -> None:
    """The kept fakes (stored as half precision) and their labels and filter statistics."""
    save_torch(
        {k: v.half() if k == "x" and isinstance(v, torch.Tensor) else v for k, v in tensors.items()}, paths.fakes
    )


def load_synthetic(paths: Paths, *labels: str) -> tuple[torch.Tensor, ...]:
    """(fakes, labels...) of the synthetic set, one read; each label picks "y" (classification,
    the default), or "y_cond" / "y_teacher" (regression: the condition, or the teacher's adjusted
    label)."""
    path = paths.fakes
    try:
        blob = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: synthetic set not found (run the synthesize stage first)") from None
    except Exception as err:
        raise DataError(f"{path}: unreadable synthetic set ({type(err).__name__})") from None
    return blob["x"].float(), *(blob[label] for label in labels or ("y",))
