"""params.yaml as frozen pydantic models.

Every tunable lives in params.yaml; this module mirrors it. Unknown keys are rejected, and
`load_params` turns any validation problem into a one-line `ParamsError` naming the key path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ParamsError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _registry(kind: str) -> dict:
    """The registry a name of `kind` selects from: the one source of the known names."""
    if kind == "GAN loss":
        from pipeline.gan.losses import LOSSES

        return LOSSES
    if kind == "GAN kind":
        from pipeline.gan.kinds import KINDS

        return KINDS
    if kind == "KD method":
        from pipeline.distill.methods import METHODS

        return METHODS
    from pipeline.nets import CLASSIFIERS, GENERATORS

    registries: dict[str, dict] = {"classifier net": CLASSIFIERS, "GAN arch": GENERATORS}
    return registries[kind]


def _registered(kind: str, *extra: str) -> AfterValidator:
    """A name checked against its registry (plus `extra` names) when params are loaded."""

    def check(name: str) -> str:
        known = sorted([*_registry(kind), *extra])
        if name not in known:
            raise ValueError(f"unknown {kind} {name!r} (known: {', '.join(known)})")
        return name

    return AfterValidator(check)


ClassifierNet = Annotated[str, _registered("classifier net")]
FeatureNet = Annotated[str, _registered("classifier net", "teacher")]
GanArch = Annotated[str, _registered("GAN arch")]
GanLoss = Annotated[str, _registered("GAN loss")]
GanKind = Annotated[str, _registered("GAN kind")]
KdMethod = Annotated[str, _registered("KD method")]


BUILTIN_CLASSIFICATION = ("digits", "chair_models")  # generated or shipped by a package: no root


class DataParams(Section):
    name: Literal["digits", "chair_models", "cifar10", "cifar100", "mnist", "fashion_mnist"] = "digits"
    root: Path | None = Field(None, description="directory holding a local data set (not the built-in ones)")
    image_size: int = Field(16, ge=8, le=256)
    test_fraction: float = Field(0.3, gt=0, lt=1, description="digits only: held-out share")
    n_models: int = Field(20, ge=2, description="chair_models: chair models, one class each")
    per_class: int = Field(
        80, ge=2, description="chair_models: training images per class (before validation is carved)"
    )
    test_per_class: int = Field(50, ge=1, description="chair_models: test images per class")
    train_per_class: int | None = Field(None, ge=1, description="keep this many training images per class")
    train_fraction: float | None = Field(None, gt=0, le=1, description="or this share per class")
    val_per_class: int = Field(0, ge=0, description="validation images per class, carved from the training split first")

    @model_validator(mode="after")
    def _check(self) -> DataParams:
        if self.train_per_class is not None and self.train_fraction is not None:
            raise ValueError("give train_per_class or train_fraction, not both")
        if self.name == "chair_models" and self.image_size < 16:
            raise ValueError(f"image_size {self.image_size}: the chair renderer draws at 16 pixels or more")
        if self.name not in BUILTIN_CLASSIFICATION and self.root is None:
            raise ValueError(f"data set {self.name!r} is read from local files: set root")
        return self


class ClassifierParams(Section):
    net: ClassifierNet = "resnet"
    width: int = Field(32, ge=4, le=512)
    steps: int = Field(2000, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    augment: bool = True
    max_shift: int = Field(2, ge=0, le=8, description="random translation in pixels when augment")
    keep_best: bool = Field(
        False, description="end with the weights of the best validation score (checked every eval_every steps)"
    )
    eval_every: int = Field(50, ge=1, description="steps between logged losses (and validation checks with keep_best)")

    @model_validator(mode="after")
    def _width(self) -> ClassifierParams:
        _check_net_width(self.net, self.width)
        return self


class KdDlGanParams(Section):
    """KD-DLGAN (pipeline/gan/kd_dlgan.py): a frozen encoder distilled into D."""

    encoder: str = Field(
        "teacher",
        description="teacher: the experiment's own classifier trained on the full training split (classification: "
        "its teacher; ganzoo: gan.kd_teacher, kept apart from the evaluation teacher); else the path of a local "
        "encoder file in `format`",
    )
    format: Literal["classifier", "torchscript", "open_clip"] = Field(
        "classifier",
        description="classifier: a cgankd classifier checkpoint (penultimate features); torchscript: a module "
        "images -> features; open_clip: an open_clip checkpoint of model `open_clip_model` (needs the open_clip_torch "
        "package; its text side gives the prototypes)",
    )
    open_clip_model: str | None = Field(None, description="open_clip: the model name, e.g. ViT-B-32")
    image_size: int | None = Field(
        None, ge=8, description="resize images to this (and grey to 3 channels) before a torchscript/open_clip encoder"
    )
    agkd: float = Field(1.0, ge=0, description="weight of aggregated generative KD in D's loss (0: off)")
    cgkd: float = Field(1.0, ge=0, description="weight of correlated generative KD in D's loss (0: off)")
    p: float = Field(0.5, ge=0, le=1, description="AGKD: probability that a (real, fake) pair adds the crossed targets")

    @model_validator(mode="after")
    def _check(self) -> KdDlGanParams:
        if self.agkd == 0 and self.cgkd == 0:
            raise ValueError("agkd and cgkd are both 0: turn one on, or drop kd_dlgan")
        if self.encoder == "teacher" and self.format != "classifier":
            raise ValueError(f"format: encoder 'teacher' is a classifier, not {self.format}")
        if self.format == "open_clip" and not self.open_clip_model:
            raise ValueError("open_clip_model: name the open_clip model the encoder file holds")
        return self


class GanParams(Section):
    kind: GanKind = Field(
        "projection",
        description="projection (SNGAN/BigGAN; CcGAN for continuous labels), s3gan, dcgan, cdcgan, acgan, 2ngan, "
        "infogan (pipeline/gan/kinds.py)",
    )
    arch: GanArch = Field("sngan", description="the nets of projection and s3gan (the DCGAN kinds have their own)")
    loss: GanLoss = "hinge"
    label_fraction: float = Field(
        1.0,
        gt=0,
        le=1,
        description="keep the labels of this share of each class's training images: s3gan takes the rest "
        "unlabelled, the other label-using kinds train on the labelled images only",
    )
    data_fraction: float = Field(
        1.0,
        gt=0,
        le=1,
        description="train on this share of each class's training images (data-limited GANs; rounded half up, at "
        "least one, drawn with the seed); the other images are never seen by the GAN",
    )
    info_continuous: int = Field(2, ge=0, description="infogan: continuous codes (the first entries of z)")
    z_dim: int = Field(64, ge=1)
    g_width: int = Field(64, ge=8)
    d_width: int = Field(64, ge=8)
    d_head: Literal["sum", "ccgan"] = Field(
        "sum",
        description="image D's head: sum-pooled 8 x d_width channels at 4x4 (SNGAN), or ccgan: one more block to "
        "16 x d_width channels, flattened (the CcGAN reference code's 64x64 D)",
    )
    steps: int = Field(2000, ge=1, description="generator steps")
    n_dis: int = Field(2, ge=1, description="discriminator steps per generator step")
    batch_size: int = Field(64, ge=2)
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    beta1: float = Field(0.0, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    augment_shift: int = Field(0, ge=0, le=8, description="DiffAugment translation (pixels) of D's inputs; 0 = off")
    augment_cutout: float = Field(
        0.0,
        ge=0,
        le=1,
        description="DiffAugment cutout of D's inputs: square side / image side (DiffAugment: 0.5); 0 = off",
    )
    kd_dlgan: KdDlGanParams | None = Field(None, description="KD-DLGAN's distillation into D (null: off)")
    ema_decay: float = Field(0.995, ge=0, lt=1)
    ema_start: int = Field(500, ge=0, description="EMA copies G until this step")
    compile: bool = Field(
        False,
        description=(
            "run each iteration (D steps, G step, Adam updates) as one torch.compile graph: faster "
            "for small nets, after a one-off compile (needs a C++ compiler)"
        ),
    )
    checkpoint_every: int = Field(250, ge=1)
    log_every: int = Field(50, ge=1)

    @model_validator(mode="after")
    def _kind(self) -> GanParams:
        from pipeline.gan.kinds import KINDS

        kind = KINDS[self.kind]
        if kind.labels == "none" and self.label_fraction < 1:
            raise ValueError(f"label_fraction: kind {self.kind} uses no labels")
        if kind.nets is None and self.kind != "projection" and self.arch != "sngan":
            raise ValueError(f"kind {self.kind} needs arch sngan")
        if self.compile and self.kind != "projection":
            raise ValueError(f"compile: only kind projection runs compiled, not {self.kind}")
        if self.compile and self.kd_dlgan is not None:
            raise ValueError("compile: KD-DLGAN does not run compiled")
        if self.kind == "infogan" and self.info_continuous >= self.z_dim:
            raise ValueError(f"info_continuous {self.info_continuous} must be below z_dim {self.z_dim}")
        return self


# GanParams fields whose defaults a GAN checkpoint's config leaves out (added after checkpoints existed)
GAN_CONFIG_DEFAULTS = {
    "d_head": "sum",
    "kind": "projection",
    "label_fraction": 1.0,
    "info_continuous": 2,
    "data_fraction": 1.0,
    "augment_cutout": 0.0,
    "kd_dlgan": None,
    "d_depth": None,
}


Subsampling = Literal["none", "dre", "cdre"]
SUBSAMPLING_HELP = (
    "draw the fakes through density-ratio rejection sampling: none, dre (DRE-F-SP+RS) or cdre (cDRE-F-cSP+RS)"
)


class SynthesizeParams(Section):
    subsampling: Subsampling = Field("none", description=SUBSAMPLING_HELP)
    n_fake_per_class: int = Field(500, ge=1)
    n_burnin_per_class: int = Field(200, ge=1)
    rho: float = Field(0.7, gt=0, le=1, description="keep fakes whose teacher CE is below this quantile")
    relabel: bool = Field(True, description="replace each kept fake's label by the teacher's class")
    batch_size: int = Field(500, ge=1)


def _check_net_width(net: str, width: int) -> None:
    """A net that cannot be built at `width` (e.g. shufflenetv2 at an odd one) fails at load."""
    from pipeline.nets import check_width

    check_width(net, width)


class BlkdParams(Section):
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1, description="weight of the distillation term")


class FitNetParams(Section):
    weight: float = Field(100.0, ge=0, description="weight of the hint loss (RepDistiller's 100)")
    stage: int = Field(-2, ge=-3, le=-1, description="the stage whose maps are matched, counted from the last (-1)")


class AtParams(Section):
    weight: float = Field(500.0, ge=0, description="beta / 2 with the paper's beta = 1000")


class RkdParams(Section):
    distance: float = Field(25.0, ge=0)
    angle: float = Field(50.0, ge=0)
    weight: float = Field(1.0, ge=0)


class CrdParams(Section):
    weight: float = Field(0.8, ge=0)
    dim: int = Field(128, ge=2, description="embedding size of both projection heads")
    negatives: int = Field(4096, ge=1, description="negatives per sample (at most the training set size - 1)")
    temperature: float = Field(0.07, gt=0)
    momentum: float = Field(0.5, ge=0, lt=1, description="memory bank update: new = m old + (1 - m) embedding")


class TakdParams(Section):
    """TAKD's teacher assistant: trained from the teacher by BLKD (student.blkd) with the student's
    schedule, then the student's teacher."""

    net: ClassifierNet = "resnet"
    width: int = Field(8, ge=4, le=512)

    @model_validator(mode="after")
    def _width(self) -> TakdParams:
        _check_net_width(self.net, self.width)
        return self


class KdParams(ClassifierParams):
    """What every student shares: its net and schedule, the KD methods and their sections."""

    methods: tuple[KdMethod, ...] = Field(
        (), description="KD methods; each trains once per entry of variants (e.g. blkd and cgan_kd_blkd)"
    )
    init: tuple[Literal["scratch", "real_only"], ...] = Field(
        ("scratch",),
        description="how the students on fakes start, each entry training its own: scratch (batches mixed by "
        "fake_fraction), or real_only (the reference's: fine-tuned from the real-data student of the same method, "
        "on batches drawn over the union of real and fakes; named <student>_ft)",
    )
    finetune_lr: float | None = Field(
        None,
        gt=0,
        description="initial learning rate of the real_only-initialised (_ft) students; the reference fine-tunes "
        "at 0.01 what it trains from scratch at 0.05; unset: lr",
    )
    blkd: BlkdParams = BlkdParams()
    fitnet: FitNetParams = FitNetParams()
    at: AtParams = AtParams()
    rkd: RkdParams = RkdParams()

    @model_validator(mode="after")
    def _init(self) -> KdParams:
        if not self.init or len(set(self.init)) != len(self.init):
            raise ValueError("init: name scratch, real_only or both, once each")
        if "real_only" in self.init and "real_only" not in getattr(self, "variants", ()):
            raise ValueError("init: real_only fine-tunes the real_only students: add real_only to variants")
        return self


class StudentParams(KdParams):
    net: ClassifierNet = "cnn"
    width: int = 16
    augment: bool = False
    fake_fraction: float | None = Field(
        None, ge=0, le=1, description="share of fakes in each cGAN-KD batch; unset: in proportion to their number"
    )
    variants: tuple[Literal["real_only", "cgan_kd"], ...] = Field(
        ("real_only", "cgan_kd"), description="the data: real only, or real + the synthetic set"
    )
    methods: tuple[KdMethod, ...] = Field(
        ("blkd",), description="KD methods; each trains once per entry of variants (blkd and cgan_kd_blkd)"
    )
    crd: CrdParams = CrdParams()
    takd: TakdParams = TakdParams()


class ClassFeaturesParams(ClassifierParams):
    """DRE's feature extractor for class labels: a classifier of its own trained on the real training
    data (h = its penultimate layer; seeded apart from the teacher, as the reference trains its own
    ResNet extractor), or the teacher itself with net: teacher."""

    net: FeatureNet = Field("resnet", description="a classifier net (resnet, cnn), or teacher to reuse the teacher")


class AutoencoderParams(Section):
    """DRE's feature extractor for continuous labels: a sparse autoencoder with a regression head."""

    code_dim: int = Field(64, ge=8, description="dimension of the code h (the feature space)")
    width: int = Field(32, ge=4, le=512)
    steps: int = Field(1500, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0)
    sparsity: float = Field(1e-3, ge=0, description="weight of mean(h) in the loss")


class DreParams(Section):
    """DRE-F-SP and cDRE-F-cSP (both trained), and the rejection sampling that uses them."""

    gan_variant: str | None = Field(
        None, description="continuous labels: the GAN variant whose fakes are subsampled (default: the first)"
    )
    penalty: float = Field(0.01, ge=0, description="the DRE penalty lambda on (E_fake[psi] - 1)^2")
    width: int = Field(256, ge=8, description="hidden units of psi's MLP (a multiple of 8: GroupNorm)")
    depth: int = Field(4, ge=1)
    dropout: float = Field(0.5, ge=0, lt=1)
    norm: Literal["group", "none"] = Field(
        "group", description="psi's hidden normalisation; none for low-dimensional features (points)"
    )
    embed_dim: int = Field(16, ge=1, description="class labels: size of psi's label embedding")
    steps: int = Field(2000, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    fresh_fakes: bool = Field(
        True, description="new fakes as training goes (the reference's), not a fixed pool psi can over-fit"
    )
    fresh_block: int = Field(
        16, ge=1, description="fresh fakes: generated for this many batches at once (one per real drawn, at its label)"
    )
    fresh_reuse: int = Field(
        1,
        ge=1,
        description="fresh fakes: each block serves block x reuse batches, every fake shown reuse times "
        "(1: once, the reference's)",
    )
    max_redraws: int = Field(
        10, ge=0, description="continuous labels: redraws of a training fake whose predicted label leaves the window"
    )
    fakes_per_real: int = Field(
        10, ge=1, description="with fresh_fakes false: the fixed pool, fakes generated at each real sample's label"
    )
    burnin: int = Field(100, ge=1, description="rejection sampling: burn-in candidates per label that set M")
    batch_size_rs: int = Field(1000, ge=1, description="rejection sampling: candidates per round")
    zeta_factor: float | None = Field(
        6.0, gt=0, description="continuous labels: window half-width = this x the largest label gap; null: no window"
    )

    @model_validator(mode="after")
    def _check(self) -> DreParams:
        if self.norm == "group" and self.width % 8:
            raise ValueError(f"width {self.width}: use a multiple of 8 (GroupNorm with 8 groups)")
        return self


class EvalNetParams(Section):
    """The evaluation nets, trained once on every real image by the evalnets stage: they judge fakes,
    never a student, and are neither the teacher nor DRE's feature net."""

    net: ClassifierNet = Field("cnn", description="the evaluation nets' architecture, trained on all real images")
    width: int = Field(32, ge=4, le=512)
    steps: int = Field(1500, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(0.01, gt=0)


class EvaluateParams(EvalNetParams):
    """FID, intra-FID and IS in the evaluation classifier's space (of net/width/steps/batch_size/lr)."""

    n_fake_per_class: int = Field(200, ge=2)
    inception_weights: Path | None = Field(
        None, description="local pt_inception weights file; adds a standard Inception FID"
    )


class ClassificationExperiment(Section):
    task: Literal["classification"]
    data: DataParams = DataParams()
    teacher: ClassifierParams = ClassifierParams()
    gan: GanParams = GanParams()
    features: ClassFeaturesParams = ClassFeaturesParams()
    dre: DreParams = DreParams()
    synthesize: SynthesizeParams = SynthesizeParams()
    student: StudentParams = StudentParams()
    evaluate: EvaluateParams = EvaluateParams()

    @property
    def dre_variant(self) -> str:
        return "cgan"  # the one GAN of a classification experiment (artifacts.CLASS_VARIANT)

    @model_validator(mode="after")
    def _conditional(self) -> ClassificationExperiment:
        from pipeline.gan.kinds import KINDS

        if not KINDS[self.gan.kind].conditional:
            raise ValueError(f"gan.kind {self.gan.kind} is unconditional: cGAN-KD samples fakes at given classes")
        return self


# ---- the class-conditional GAN family compared (ganzoo) --------------------------------------

ZOO_VARIANTS: dict[str, dict[str, Any]] = {
    "dcgan": {"kind": "dcgan"},
    "cdcgan": {"kind": "cdcgan"},
    "acgan": {"kind": "acgan"},
    "2ngan": {"kind": "2ngan"},
    "infogan": {"kind": "infogan"},
    "projection": {"kind": "projection"},
}


class ZooGanParams(GanParams):
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: dict(ZOO_VARIANTS),
        description="one GAN per entry, trained with the settings above overridden by the entry's (kind, "
        "label_fraction, loss, beta1, ...)",
    )
    kd_teacher: ClassifierParams | None = Field(
        None,
        description="KD-DLGAN's own encoder (kd_dlgan.encoder: teacher): a classifier trained by the gan stage on the "
        "full training split, apart from the evaluation teacher",
    )

    def variant(self, name: str) -> GanParams:
        """The settings of one variant: the shared ones with the variant's overrides."""
        return GanParams.model_validate({**self.model_dump(exclude={"variants", "kd_teacher"}), **self.variants[name]})

    @model_validator(mode="after")
    def _variants(self) -> ZooGanParams:
        if not self.variants:
            raise ValueError("variants: define at least one GAN variant")
        for name, override in self.variants.items():
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"variant name {name!r}: use letters, digits, '-' and '_'")
            if "variants" in override:
                raise ValueError(f"variants.{name}: a variant cannot have variants")
            try:
                pv = self.variant(name)
            except ValidationError as err:
                msg = _format(err).removeprefix("<top level>: ")  # a check across keys names its key itself
                raise ValueError(f"variants.{name}.{msg}") from None
            if pv.kd_dlgan is not None and pv.kd_dlgan.encoder == "teacher" and self.kd_teacher is None:
                raise ValueError(f"kd_teacher: variant {name} distils the encoder 'teacher': define gan.kd_teacher")
        return self

    @property
    def needs_kd_teacher(self) -> bool:
        return any((kd := self.variant(v).kd_dlgan) is not None and kd.encoder == "teacher" for v in self.variants)


class GanZooExperiment(Section):
    """Every GAN kind trained at one budget on one data set and compared on the teacher's features
    (the teacher is only the evaluation net here: FID, intra-FID, IS, accuracy on fakes)."""

    task: Literal["ganzoo"]
    data: DataParams = DataParams()
    teacher: ClassifierParams = ClassifierParams()
    gan: ZooGanParams = ZooGanParams()
    evaluate: EvaluateParams = EvaluateParams()


# ---- continuous labels (CcGAN) -------------------------------------------------------------


class CircleDataParams(Section):
    """The CcGAN paper's simulation: Gaussians on a circle, label = angle (radians)."""

    name: Literal["circle"] = "circle"
    n_train_angles: int = Field(120, ge=2)
    per_angle: int = Field(10, ge=1, description="training samples per training angle")
    n_eval_angles: int = Field(360, ge=1, description="unseen evaluation angles")
    eval_per_angle: int = Field(100, ge=2, description="fakes (and real reference draws) per evaluation angle")
    radius: float = Field(1.0, gt=0)
    std: float = Field(0.02, gt=0)


class RegressionDataParams(Section):
    name: Literal["chairs", "rc49", "utkface", "steering_angle"] = "chairs"
    root: Path | None = Field(None, description="directory holding the HDF5 file (not chairs)")
    image_size: int = Field(32, ge=8, le=256)
    n_models: int = Field(10, ge=1, description="chairs: number of chair models")
    angle_step: float = Field(0.25, gt=0, description="chairs: yaw grid step (degrees)")
    train_angle_fraction: float = Field(0.8, gt=0, lt=1, description="chairs: share of angles used for training")
    max_per_label: int | None = Field(
        5, ge=1, description="keep at most this many training images per label (RC-49 style)"
    )
    val_fraction: float = Field(0.1, ge=0, lt=1, description="validation share, carved from the kept training images")

    @model_validator(mode="after")
    def _check(self) -> RegressionDataParams:
        if self.name != "chairs" and self.root is None:
            raise ValueError(f"data set {self.name!r} is read from a local HDF5 file: set root")
        return self


class EmbedParams(Section):
    """ILI: the regression net x -> h -> y, then y2h (1 -> 128)."""

    net: ClassifierNet = "resnet"
    width: int = Field(16, ge=4, le=512)
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(0.01, gt=0)
    y2h_steps: int = Field(1000, ge=1)
    y2h_lr: float = Field(0.001, gt=0)
    gamma_std: float = Field(0.2, ge=0, description="noise added to y when training y2h (clamped to [0, 1])")


class CcGanVariant(Section):
    vicinity: Literal["hard", "soft", "binned"] = Field(description="HVDL, SVDL, or the baseline cGAN on binned labels")
    label_input: Literal["nli", "ili"] = Field("nli", description="CcGAN label input (binned uses class embeddings)")


class CcGanParams(GanParams):
    arch: GanArch = "sngan"
    loss: GanLoss = "bce"
    depth: int = Field(4, ge=1, description="mlp only: hidden layers of G (and of D unless d_depth)")
    d_depth: int | None = Field(None, ge=1, description="mlp only: hidden layers of D (unset: depth)")
    periodic_label: bool = Field(False, description="mlp only: feed the label as (sin 2 pi y, cos 2 pi y) (an angle)")
    m_kappa: float = Field(2.0, gt=0, description="kappa = m_kappa * largest gap between sorted distinct labels")
    label_gap: float | None = Field(None, gt=0, description="that gap, if known (circle: 1/120); else measured")
    sigma: float | None = Field(None, ge=0, description="override the rule-of-thumb noise std (normalised labels)")
    kappa: float | None = Field(None, gt=0, description="override the HVDL half-width")
    nu: float | None = Field(None, gt=0, description="override the SVDL weight decay")
    n_bins: int = Field(60, ge=2, description="classes of the binned cGAN baseline")
    variants: dict[str, CcGanVariant] = {
        "hvdl": CcGanVariant(vicinity="hard"),
        "svdl": CcGanVariant(vicinity="soft"),
        "binned": CcGanVariant(vicinity="binned"),
    }

    @model_validator(mode="after")
    def _check(self) -> CcGanParams:
        if self.kind != "projection":
            raise ValueError(f"kind {self.kind}: continuous labels train CcGANs (kind projection)")
        if self.kd_dlgan is not None or self.data_fraction < 1:
            key = "kd_dlgan" if self.kd_dlgan is not None else "data_fraction"
            raise ValueError(f"{key}: for class labels (its prototypes and shares are per class), not CcGANs")
        if not self.variants:
            raise ValueError("variants: define at least one GAN variant")
        for name in self.variants:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"variant name {name!r}: use letters, digits, '-' and '_'")
        return self


class RegressorParams(ClassifierParams):
    loss: Literal["mse", "l1"] = "mse"
    max_shift: int = Field(
        0, ge=0, le=8, description="random translation in pixels when augment (shifts can change the angle's look)"
    )
    augment: bool = False


class RegSynthesizeParams(Section):
    subsampling: Subsampling = Field("none", description=SUBSAMPLING_HELP)
    gan_variant: str = Field("svdl_ili", description="which GAN variant generates the fakes")
    n_fake: int = Field(5000, ge=1, description="fakes kept at most (labels drawn uniformly over the label range)")
    n_per_label: int = Field(10, ge=1, description="fakes per drawn label (n_fake / n_per_label labels)")
    n_burnin: int = Field(1000, ge=1, description="fakes that fix the filter's threshold")
    rho: float = Field(
        0.7, gt=0, le=1, description="keep fakes with |teacher(x) - y| below this quantile of the burn-in set"
    )
    batch_size: int = Field(500, ge=1)


class RegStudentParams(RegressorParams, KdParams):
    net: ClassifierNet = "cnn"
    width: int = 16
    fake_fraction: float | None = Field(0.5, ge=0, le=1, description="share of fakes in each cGAN-KD batch")
    variants: tuple[Literal["real_only", "cgan_kd", "cgan_kd_adjusted", "oracle"], ...] = Field(
        ("real_only", "cgan_kd", "cgan_kd_adjusted"),
        description="the data: real only, + fakes at their condition labels, + fakes with the teacher's labels, "
        "+ perfect fakes (built-in chairs)",
    )

    @model_validator(mode="after")
    def _regression_methods(self) -> RegStudentParams:
        from pipeline.distill.methods import METHODS, NOT_FOR_REGRESSION

        for m in self.methods:
            if "regression" not in METHODS[m][1]:
                fits = ", ".join(sorted(k for k, (_, tasks) in METHODS.items() if "regression" in tasks))
                raise ValueError(f"methods: {m} does not apply to regression: {NOT_FOR_REGRESSION[m]} (use {fits})")
        return self


class RegEvaluateParams(EvalNetParams):
    """Label Score, FID and intra-FID with the evaluation regressor, Diversity with the attribute classifier."""

    n_labels: int = Field(90, ge=2, description="evaluation labels, evenly spaced over the label range")
    n_fake_per_label: int = Field(50, ge=2)
    n_bins: int = Field(10, ge=1, description="label bins for intra-FID")


class RegressionExperiment(Section):
    task: Literal["regression"]
    data: RegressionDataParams = RegressionDataParams()
    embed: EmbedParams = EmbedParams()
    teacher: RegressorParams = RegressorParams()
    gan: CcGanParams = CcGanParams()
    features: AutoencoderParams = AutoencoderParams()
    dre: DreParams = DreParams()
    synthesize: RegSynthesizeParams = RegSynthesizeParams()
    student: RegStudentParams = RegStudentParams()
    evaluate: RegEvaluateParams = RegEvaluateParams()

    @property
    def dre_variant(self) -> str:
        return self.dre.gan_variant or next(iter(self.gan.variants))

    @model_validator(mode="after")
    def _check(self) -> RegressionExperiment:
        if self.synthesize.gan_variant not in self.gan.variants:
            raise ValueError(
                f"synthesize.gan_variant {self.synthesize.gan_variant!r} is not a gan variant "
                f"({', '.join(self.gan.variants)})"
            )
        _check_dre_variant(self.dre, self.gan)
        if "oracle" in self.student.variants and self.data.name != "chairs":
            raise ValueError(
                "student.variants: oracle renders perfect fakes, which only the built-in chairs can, not "
                f"{self.data.name!r}"
            )
        if self.synthesize.subsampling != "none" and self.dre_variant != self.synthesize.gan_variant:
            raise ValueError(
                "synthesize.subsampling needs the density ratio of synthesize.gan_variant "
                f"{self.synthesize.gan_variant!r}, but dre.gan_variant is {self.dre_variant!r}"
            )
        return self


class CircleExperiment(Section):
    task: Literal["circle"]
    data: CircleDataParams = CircleDataParams()
    embed: EmbedParams = EmbedParams(net="mlp", width=100)
    gan: CcGanParams = CcGanParams(arch="mlp", periodic_label=True, label_gap=1 / 120, z_dim=2)
    features: AutoencoderParams = AutoencoderParams()
    dre: DreParams = DreParams(zeta_factor=None)

    @property
    def dre_variant(self) -> str:
        return self.dre.gan_variant or next(iter(self.gan.variants))

    @model_validator(mode="after")
    def _check(self) -> CircleExperiment:
        _check_dre_variant(self.dre, self.gan)
        return self


# ---- unpaired translation (CycleGAN) ---------------------------------------------------------


class TranslationDataParams(Section):
    name: Literal["chair_styles", "folders"] = Field(
        "chair_styles",
        description="chair_styles: built-in shaded (A) vs line-drawn (B) chairs, yaw known on both sides; folders: "
        "trainA/ trainB/ testA/ testB/ image folders under root",
    )
    root: Path | None = Field(None, description="folders: the directory holding trainA/ trainB/ testA/ testB/")
    image_size: int = Field(32, ge=16, le=512, description="images are resized to this square")
    channels: Literal[1, 3] = Field(3, description="folders: read images as grey (1) or RGB (3); chairs are grey")
    n_models: int = Field(10, ge=1, description="chair_styles: chair models per domain (different on each side)")
    n_train: int = Field(1000, ge=1, description="chair_styles: training images per domain")
    n_test: int = Field(200, ge=1, description="chair_styles: test images per domain")

    @model_validator(mode="after")
    def _check(self) -> TranslationDataParams:
        if self.name == "folders" and self.root is None:
            raise ValueError("folders: set root, the directory holding trainA/ trainB/ testA/ testB/")
        if self.name == "chair_styles" and self.root is not None:
            raise ValueError("root: chair_styles is built in (rendered); use name: folders for local images")
        return self


class CycleGanParams(Section):
    g_width: int = Field(32, ge=4, description="generator: channels of its first layer (the paper: 64)")
    n_blocks: int = Field(6, ge=0, description="generator: residual blocks (the paper: 6 at 128 pixels, 9 at 256)")
    n_down: int = Field(2, ge=0, le=5, description="generator: stride-2 down (and up) samplings")
    d_width: int = Field(32, ge=4, description="PatchGAN: channels of its first layer (the paper: 64)")
    d_layers: int = Field(3, ge=1, le=6, description="PatchGAN: stride-2 layers (the paper: 3, 70x70 patches)")
    loss: GanLoss = Field("ls", description="adversarial loss (ls: least squares, as the paper)")
    lambda_cyc: float = Field(10.0, ge=0, description="weight of the cycle losses")
    lambda_id: float = Field(
        0.5, ge=0, description="identity loss weight, relative to lambda_cyc (0: off; the paper: 0.5)"
    )
    pool_size: int = Field(50, ge=0, description="past fakes D sees (0: only the latest)")
    steps: int = Field(4000, ge=1)
    decay_from: float = Field(
        0.5, ge=0, le=1, description="share of the steps at a constant learning rate, then linear decay to 0"
    )
    batch_size: int = Field(8, ge=1, description="the paper: 1")
    lr: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    log_every: int = Field(50, ge=1)
    checkpoint_every: int = Field(500, ge=1)


class TranslationEvaluateParams(Section):
    net: ClassifierNet = Field(
        "cnn",
        description="the evaluation nets, trained on real images: domain B's label regressor (built-in chairs: the "
        "yaw) and a domain classifier (A or B)",
    )
    width: int = Field(32, ge=4, le=512)
    steps: int = Field(1500, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(0.01, gt=0)
    pose_target: float = Field(
        10.0, gt=0, description="claim: the label read from G(x) within this many units of x's (mean over test)"
    )


class TranslationExperiment(Section):
    """CycleGAN between two unpaired image domains A and B (G: A -> B, F: B -> A)."""

    task: Literal["translation"]
    data: TranslationDataParams = TranslationDataParams()
    gan: CycleGanParams = CycleGanParams()
    evaluate: TranslationEvaluateParams = TranslationEvaluateParams()

    @model_validator(mode="after")
    def _check(self) -> TranslationExperiment:
        if self.data.image_size % 2**self.gan.n_down:
            raise ValueError(
                f"data.image_size {self.data.image_size}: the generator needs a multiple of 2^gan.n_down = "
                f"{2**self.gan.n_down}"
            )
        if self.data.image_size < 2 ** (self.gan.d_layers + 1):
            raise ValueError(f"gan.d_layers {self.gan.d_layers}: too many stride-2 layers for {self.data.image_size}px")
        return self


def _check_dre_variant(dre: DreParams, gan: CcGanParams) -> None:
    if dre.gan_variant is not None and dre.gan_variant not in gan.variants:
        raise ValueError(f"dre.gan_variant {dre.gan_variant!r} is not a gan variant ({', '.join(gan.variants)})")


Experiment = Annotated[
    ClassificationExperiment | RegressionExperiment | CircleExperiment | GanZooExperiment | TranslationExperiment,
    Field(discriminator="task"),
]
TASKS = ("classification", "regression", "circle", "ganzoo", "translation")
# the stages of each task's pipeline, in order
TASK_STAGES = {
    "classification": ("prepare", "teacher", "evalnets", "gan", "features", "dre", "synthesize", "student", "evaluate"),
    "regression": (
        "prepare",
        "embed",
        "teacher",
        "gan",
        "features",
        "dre",
        "synthesize",
        "student",
        "evalnets",
        "evaluate",
    ),
    "circle": ("prepare", "embed", "gan", "features", "dre", "evaluate"),
    "ganzoo": ("prepare", "teacher", "gan", "evaluate"),
    "translation": ("prepare", "evalnets", "gan", "evaluate"),
}
# the stages that train under torchrun (DDP) when runtime.nproc > 1; the others run in one process
# (CycleGAN's training keeps its image pools and batches of 1-8 in one process, as the paper does)
DISTRIBUTED_STAGES = {
    "classification": ("teacher", "evalnets", "gan", "features", "dre", "student"),
    "regression": ("embed", "teacher", "gan", "features", "dre", "student", "evalnets"),
    "circle": ("embed", "gan", "features", "dre"),
    "ganzoo": ("teacher", "gan"),
    "translation": (),
}
# which experiments each group of DVC stages loops over, by task
GROUP_TASKS = {
    "kd": ("classification", "regression"),
    "classification": ("classification",),
    "continuous": ("regression", "circle"),
    "regression": ("regression",),
    "simulation": ("circle",),
    "ganzoo": ("ganzoo",),
    "translation": ("translation",),
}


class Groups(Section):
    """The lists dvc.yaml's stages loop over (DVC cannot filter a foreach); must match the tasks."""

    kd: tuple[str, ...] = ()
    classification: tuple[str, ...] = ()
    continuous: tuple[str, ...] = ()
    regression: tuple[str, ...] = ()
    simulation: tuple[str, ...] = ()
    ganzoo: tuple[str, ...] = ()
    translation: tuple[str, ...] = ()


class RuntimeParams(Section):
    """Where the stages run (not tracked by DVC: results agree across them up to rounding and
    the per-rank statistics that pipeline/runtime.py states)."""

    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: a GPU when there is one")
    amp: bool = Field(True, description="bf16 autocast of G's and D's forwards on GPU (ignored on CPU)")
    nproc: int = Field(1, ge=1, description="processes per training stage: >1 launches torchrun (DDP) on this machine")


class Params(Section):
    seed: int = Field(0, ge=0)
    runtime: RuntimeParams = RuntimeParams()
    groups: Groups = Groups()
    experiments: dict[str, Experiment]

    @model_validator(mode="after")
    def _names(self) -> Params:
        for name in self.experiments:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"experiment name {name!r}: use letters, digits, '-' and '_'")
        if not self.experiments:
            raise ValueError("define at least one experiment")
        for group, tasks in GROUP_TASKS.items():
            want = sorted(n for n, e in self.experiments.items() if e.task in tasks)
            if sorted(getattr(self.groups, group)) != want:
                raise ValueError(
                    f"groups.{group} must list the experiments with task {' or '.join(tasks)}: [{', '.join(want)}]"
                )
        return self

    def stages(self, name: str) -> tuple[str, ...]:
        """The stages of an experiment's pipeline, in order."""
        return TASK_STAGES[self.experiment(name).task]

    def distributed(self, name: str, stage: str) -> bool:
        """Whether a stage of an experiment trains under torchrun when runtime.nproc > 1."""
        return stage in DISTRIBUTED_STAGES[self.experiment(name).task]

    def experiment(self, name: str) -> Experiment:
        if name not in self.experiments:
            known = ", ".join(sorted(self.experiments))
            raise ParamsError(f"experiments.{name}: no such experiment (known: {known})")
        return self.experiments[name]


def _format(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = list(first["loc"])
    if len(loc) > 2 and loc[0] == "experiments" and loc[2] in TASKS:
        del loc[2]  # pydantic puts the union's tag in the path
    path = ".".join(str(p) for p in loc) or "<top level>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "finite_number":
        msg = "must be finite"
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
