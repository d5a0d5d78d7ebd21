"""params.yaml as frozen pydantic models.

Every tunable lives in params.yaml; this module mirrors it. Unknown keys are rejected, and
`load_params` turns any validation problem into a one-line `ParamsError` naming the key path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ParamsError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Section):
    name: Literal["digits", "cifar10", "cifar100", "mnist", "fashion_mnist"] = "digits"
    root: Path | None = Field(None, description="directory holding a local data set (not digits)")
    image_size: int = Field(16, ge=8, le=256)
    test_fraction: float = Field(0.3, gt=0, lt=1, description="digits only: held-out share")
    train_per_class: int | None = Field(None, ge=1, description="keep this many training images per class")
    train_fraction: float | None = Field(None, gt=0, le=1, description="or this share per class")
    val_per_class: int = Field(0, ge=0, description="validation images per class, carved from the training split first")

    @model_validator(mode="after")
    def _check(self) -> DataParams:
        if self.train_per_class is not None and self.train_fraction is not None:
            raise ValueError("give train_per_class or train_fraction, not both")
        if self.name != "digits" and self.root is None:
            raise ValueError(f"data set {self.name!r} is read from local files: set root")
        return self


class ClassifierParams(Section):
    net: str = "resnet"
    width: int = Field(32, ge=4, le=512)
    steps: int = Field(2000, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    augment: bool = True
    max_shift: int = Field(2, ge=0, le=8, description="random translation in pixels when augment")


class GanParams(Section):
    arch: str = "sngan"
    loss: str = "hinge"
    z_dim: int = Field(64, ge=1)
    g_width: int = Field(64, ge=8)
    d_width: int = Field(64, ge=8)
    steps: int = Field(2000, ge=1, description="generator steps")
    n_dis: int = Field(2, ge=1, description="discriminator steps per generator step")
    batch_size: int = Field(64, ge=2)
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    beta1: float = Field(0.0, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    augment_shift: int = Field(0, ge=0, le=8, description="DiffAugment translation (pixels) of D's inputs; 0 = off")
    ema_decay: float = Field(0.995, ge=0, lt=1)
    ema_start: int = Field(500, ge=0, description="EMA copies G until this step")
    checkpoint_every: int = Field(250, ge=1)
    log_every: int = Field(50, ge=1)


class SynthesizeParams(Section):
    n_fake_per_class: int = Field(500, ge=1)
    n_burnin_per_class: int = Field(200, ge=1)
    rho: float = Field(0.7, gt=0, le=1, description="keep fakes whose teacher CE is below this quantile")
    relabel: bool = Field(True, description="replace each kept fake's label by the teacher's class")
    batch_size: int = Field(500, ge=1)


class BlkdParams(Section):
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1, description="weight of the distillation term")


class StudentParams(ClassifierParams):
    net: str = "cnn"
    width: int = 16
    augment: bool = False
    fake_fraction: float | None = Field(
        None, ge=0, le=1, description="share of fakes in each cGAN-KD batch; unset: in proportion to their number"
    )
    blkd: BlkdParams = BlkdParams()
    variants: tuple[Literal["real_only", "blkd", "cgan_kd", "cgan_kd_blkd"], ...] = (
        "real_only",
        "blkd",
        "cgan_kd",
        "cgan_kd_blkd",
    )


class EvaluateParams(Section):
    n_fake_per_class: int = Field(200, ge=2)
    inception_weights: Path | None = Field(
        None, description="local pt_inception weights file; adds a standard Inception FID"
    )


class Experiment(Section):
    task: Literal["classification"] = "classification"
    data: DataParams = DataParams()
    teacher: ClassifierParams = ClassifierParams()
    gan: GanParams = GanParams()
    synthesize: SynthesizeParams = SynthesizeParams()
    student: StudentParams = StudentParams()
    evaluate: EvaluateParams = EvaluateParams()


class Params(Section):
    seed: int = Field(0, ge=0)
    experiments: dict[str, Experiment]

    @model_validator(mode="after")
    def _names(self) -> Params:
        for name in self.experiments:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"experiment name {name!r}: use letters, digits, '-' and '_'")
        if not self.experiments:
            raise ValueError("define at least one experiment")
        return self

    def experiment(self, name: str) -> Experiment:
        if name not in self.experiments:
            known = ", ".join(sorted(self.experiments))
            raise ParamsError(f"experiments.{name}: no such experiment (known: {known})")
        return self.experiments[name]


def _format(err: ValidationError) -> str:
    first = err.errors()[0]
    path = ".".join(str(p) for p in first["loc"]) or "<top level>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    more = f" (and {len(err.errors()) - 1} more problem(s))" if len(err.errors()) > 1 else ""
    return f"{path}: {msg}{more}"


def validate(raw: object) -> Params:
    """Validate an already-parsed params mapping."""
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(f"params: {_format(err)}") from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml; every problem is a one-line ParamsError."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return validate(raw)
