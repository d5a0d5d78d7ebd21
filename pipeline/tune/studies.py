"""The three Optuna studies: what each tunes, around which values, and its validation objective.

A study object is built once per worker process. It loads everything its trials reuse (data,
teacher, GAN, feature extractor, the fake-feature pool), so that a trial pays only for the part
its params change: a GAN (vicinity), a ratio net and its rejection sampling (dre-penalty), or a
synthetic set and one student (n-fake). Objectives are measured on validation data carved from
the training split, never on the test split:

- vicinity: CcGAN's sigma and kappa (m_kappa for HVDL, nu for SVDL) of one variant, searched on
  a log scale around the rule of thumb. Image labels: Label Score by the teacher (trained on the
  training split) at the validation labels. circle: 2-Wasserstein at 120 validation angles that
  lie between the training angles and are not evaluation angles (2 pi (i + 1/4) / 120).
- dre-penalty: lambda of DRE-F-SP / cDRE-F-cSP on a log scale. classification: FID on teacher
  features between subsampled fakes and the validation images; image labels: Label Score by the
  teacher at the validation labels; circle: % high quality at the validation angles.
- n-fake: the synthetic set's size (and with `rho`, the filter's quantile); objective: the
  cGAN-KD student's validation accuracy or MAE.

Trials call `run(values, report)`: report(step, value) gives the pruner an intermediate value
(and may raise optuna.TrialPruned); run returns (objective, other metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from pipeline.artifacts import Paths
from pipeline.errors import ParamsError
from pipeline.params import Params, validate

Report = Callable[[int, float], None]
N_REPORTS = 4  # intermediate values per trial (the pruner's checkpoints)


@dataclass(frozen=True)
class Options:
    """Per-study choices from the command line (None: the experiment's own)."""

    variant: str | None = None  # vicinity: the CcGAN variant
    method: str | None = None  # dre-penalty: dre or cdre
    rho: bool = False  # n-fake: tune the filter's rho too


def with_values(params: Params, experiment: str, values: dict[str, Any]) -> Params:
    """params with experiments.<experiment>.<dotted key> set for each tuned value (validated)."""
    raw = params.model_dump(mode="json", exclude_unset=False)
    for key, value in values.items():
        node = raw["experiments"][experiment]
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return validate(raw)


def checkpoints(steps: int) -> Callable[[int], bool]:
    """due(step) for a training loop's logged steps: true at the first logged step past each of
    N_REPORTS - 1 evenly spaced points (the last step gives the trial's result instead)."""
    every = max(1, steps // N_REPORTS)
    next_at = every

    def due(step: int) -> bool:
        nonlocal next_at
        if not next_at <= step < steps:
            return False
        while next_at <= step:
            next_at += every
        return True

    return due


def _spaced(values: torch.Tensor, n: int) -> torch.Tensor:
    """At most n of the sorted distinct values, evenly spaced."""
    values = torch.unique(values)
    return values if len(values) <= n else values[torch.linspace(0, len(values) - 1, n).round().long()]


@contextmanager
def evaluation_rng(seed: int) -> Iterator[None]:
    """Evaluations draw from their own seeded RNG: a checkpoint's evaluation leaves the training
    run's random stream untouched (a trial trains the GAN `dvc repro` would train at its params),
    and every trial and checkpoint is measured on the same z's."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def validation_angles(exp) -> torch.Tensor:
    """circle: 2 pi (i + 1/4) / n_train_angles, between the training angles and off the evaluation angles."""
    from pipeline.data.circle import circle_angles

    return torch.from_numpy(circle_angles(exp.data.n_train_angles, offset=0.25)).float()


class Study:
    """One study kind on one experiment: `direction` and the `objective`'s name come from the
    params alone (the main process needs them); `load` reads the reused inputs."""

    name = ""

    def __init__(self, params: Params, experiment: str, paths: Paths, options: Options) -> None:
        task = params.experiment(experiment).task
        if task in ("ganzoo", "translation"):
            raise ParamsError(
                f"experiments.{experiment}: the {self.name} study tunes the cGAN-KD pipeline, which a {task} "
                "experiment does not have"
            )
        self.check(params, experiment, options)
        self.params, self.experiment, self.paths, self.options = params, experiment, paths, options
        self.exp = params.experiment(experiment)
        self.direction, self.objective = self.goal()

    def goal(self) -> tuple[str, str]:
        """("minimize" or "maximize", the objective's name)."""
        raise NotImplementedError

    @classmethod
    def check(cls, params: Params, experiment: str, options: Options) -> None:
        """Raise ParamsError if the study does not apply to the experiment (before any work)."""

    def load(self) -> None:
        """Load what every trial reuses (once per process)."""

    def defaults(self) -> dict[str, Any]:
        """The tuned keys' current values (the study's first trial)."""
        raise NotImplementedError

    def suggest(self, trial) -> dict[str, Any]:
        raise NotImplementedError

    def run(self, values: dict[str, Any], report: Report) -> tuple[float, dict[str, float]]:
        raise NotImplementedError

    # the validation data shared by the image-label studies
    def _val_split(self, ds) -> None:
        if not len(ds.y_val):
            key = "val_per_class" if self.exp.task == "classification" else "val_fraction"
            raise ParamsError(
                f"experiments.{self.experiment}.data.{key}: the {self.name} study needs a validation split "
                "(carved from the training data)"
            )

    def _regression_val_labels(self, ds) -> torch.Tensor:
        return ds.normalise(_spaced(ds.y_val, self.exp.evaluate.n_labels))

    def _circle_metrics(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """circle: the metrics of fakes x at labels y, grouped in the order of self.labels (the validation angles)."""
        from pipeline.metrics import circle_metrics, counts_by_label

        return circle_metrics(
            x,
            self.ds.denormalise(self.labels),
            radius=self.exp.data.radius,
            std=self.exp.data.std,
            counts=counts_by_label(y, self.labels),
        )

    def _label_score(self, teacher, ds, x: torch.Tensor, y: torch.Tensor) -> float:
        from pipeline.metrics import label_score
        from pipeline.utils import predict

        return label_score(ds.denormalise(predict(teacher, x).view(-1)), ds.denormalise(y))[0]


class VicinityStudy(Study):
    name = "vicinity"

    @classmethod
    def check(cls, params: Params, experiment: str, options: Options) -> None:
        exp = params.experiment(experiment)
        if exp.task == "classification":
            raise ParamsError(
                f"experiments.{experiment}: the vicinity study needs continuous labels (a regression or "
                "circle experiment)"
            )
        variant = cls._variant(exp, options)
        if variant not in exp.gan.variants:
            raise ParamsError(
                f"--variant {variant!r}: not a gan variant of {experiment} ({', '.join(exp.gan.variants)})"
            )
        kind = exp.gan.variants[variant].vicinity
        if kind == "binned":
            raise ParamsError(
                f"--variant {variant!r} is the binned baseline: the vicinity study tunes an HVDL or SVDL variant"
            )
        if kind == "hard" and exp.gan.kappa is not None:
            raise ParamsError(
                f"experiments.{experiment}.gan.kappa is set and overrides m_kappa: remove it to tune the HVDL width"
            )

    def __init__(self, params: Params, experiment: str, paths: Paths, options: Options) -> None:
        super().__init__(params, experiment, paths, options)
        self.variant = self._variant(self.exp, self.options)
        self.kind = self.exp.gan.variants[self.variant].vicinity

    def goal(self) -> tuple[str, str]:
        return "minimize", "w2_val" if self.exp.task == "circle" else "label_score_val"

    @staticmethod
    def _variant(exp, options: Options) -> str:
        if options.variant:
            return options.variant
        return exp.synthesize.gan_variant if exp.task == "regression" else exp.dre_variant

    @property
    def _rule_of_thumb(self) -> tuple[float, float]:
        """(sigma, nu) of the rule of thumb on the training labels (the search's centre)."""
        if not hasattr(self, "_rot"):
            from pipeline.data import load_dataset
            from pipeline.gan.vicinal import rule_of_thumb

            ds = load_dataset(self.paths.prepared)
            sigma, _, nu = rule_of_thumb(ds.normalise(ds.y_train), self.exp.gan.m_kappa, self.exp.gan.label_gap)
            self._rot = (sigma, nu)
        return self._rot

    def load(self) -> None:
        from pipeline.artifacts import load_classifier
        from pipeline.data import load_dataset

        self.ds = ds = load_dataset(self.paths.prepared)
        if self.exp.task == "circle":
            self.labels, self.n = ds.normalise(validation_angles(self.exp)), self.exp.data.eval_per_angle
        else:
            self._val_split(ds)
            self.teacher = load_classifier(self.paths.teacher)
            self.labels, self.n = self._regression_val_labels(ds), self.exp.evaluate.n_fake_per_label

    def defaults(self) -> dict[str, Any]:
        g = self.exp.gan
        sigma0, nu0 = self._rule_of_thumb
        out = {"gan.sigma": g.sigma if g.sigma is not None else sigma0}
        if self.kind == "hard":
            out["gan.m_kappa"] = g.m_kappa
        else:
            out["gan.nu"] = g.nu if g.nu is not None else nu0
        return out

    def suggest(self, trial) -> dict[str, Any]:
        g, (sigma0, nu0) = self.exp.gan, self._rule_of_thumb
        out = {"gan.sigma": trial.suggest_float("gan.sigma", sigma0 / 4, sigma0 * 4, log=True)}
        if self.kind == "hard":
            out["gan.m_kappa"] = trial.suggest_float("gan.m_kappa", g.m_kappa / 4, g.m_kappa * 4, log=True)
        else:  # nu = 1 / kappa^2: a factor 4 in kappa is 16 in nu
            out["gan.nu"] = trial.suggest_float("gan.nu", nu0 / 16, nu0 * 16, log=True)
        return out

    def measure(self, G) -> tuple[float, dict[str, float]]:
        from pipeline.gan.train import sample

        y = self.labels.repeat_interleave(self.n)
        with evaluation_rng(self.params.seed):
            x = sample(G, y, self.exp.gan.z_dim)
        if self.exp.task == "circle":
            m = self._circle_metrics(x, y)
            return m["w2"], {f"{k}_val": v for k, v in m.items()}
        return self._label_score(self.teacher, self.ds, x, y), {}

    def run(self, values: dict[str, Any], report: Report) -> tuple[float, dict[str, float]]:
        from pipeline.artifacts import load_y2h
        from pipeline.gan.train import GanState, train_gan
        from pipeline.gan.variants import build_variant
        from pipeline.utils import seed_everything

        exp = with_values(self.params, self.experiment, values).experiment(self.experiment)
        p = exp.gan
        seed_everything(self.params.seed)
        setup, G, D, _ = build_variant(exp, self.ds, exp.gan.variants[self.variant], lambda: load_y2h(self.paths))
        assert setup.objective is not None
        state = GanState.create(G, D, p.lr_g, p.lr_d, (p.beta1, p.beta2))
        due = checkpoints(p.steps)

        def logged(step: int, record: dict[str, float]) -> None:
            if due(step):  # no EMA: G itself (G_ema is copied from it at the end)
                report(step, self.measure(state.G_ema if p.ema_decay > 0 else state.G)[0])

        train_gan(
            state,
            setup.cond,
            objective=setup.objective,
            z_dim=p.z_dim,
            steps=p.steps,
            n_dis=p.n_dis,
            batch_size=p.batch_size,
            ema_decay=p.ema_decay,
            ema_start=p.ema_start,
            compiled=p.compile,
            log_every=p.log_every,
            progress=logged,
        )
        value, extra = self.measure(state.G_ema)
        v = setup.vicinity
        return value, {**extra, "kappa": v.kappa, "nu": v.nu, "window": v.radius}


class DrePenaltyStudy(Study):
    name = "dre-penalty"

    @classmethod
    def check(cls, params: Params, experiment: str, options: Options) -> None:
        if options.method not in (None, "dre", "cdre"):
            raise ParamsError(f"--method {options.method!r}: use dre or cdre")

    def goal(self) -> tuple[str, str]:
        return {
            "classification": ("minimize", "fid_teacher_features_val"),
            "regression": ("minimize", "label_score_val"),
            "circle": ("maximize", "pct_high_quality_val"),
        }[self.exp.task]

    def load(self) -> None:
        from pipeline.artifacts import load_classifier, load_features, load_generator, load_y2h
        from pipeline.data import load_dataset
        from pipeline.gan.train import sample
        from pipeline.subsample.fit import label_window, ratio_data

        exp, p = self.exp, self.exp.dre
        sub = getattr(getattr(exp, "synthesize", None), "subsampling", "none")
        self.method = self.options.method or (sub if sub != "none" else "cdre")
        self.ds = ds = load_dataset(self.paths.prepared)
        continuous = exp.task != "classification"
        label = ds.normalise if continuous else (lambda y: y)
        self.G = load_generator(self.paths.generator(exp.dre_variant))
        self.phi = load_features(self.paths.features)
        self.y2h = load_y2h(self.paths) if continuous and self.method == "cdre" else None
        y_train = label(ds.y_train)
        self.zeta = label_window(y_train, p.zeta_factor, continuous)
        if exp.task == "classification":
            self._val_split(ds)
            self.teacher = load_classifier(self.paths.teacher)
            self.labels, self.n = torch.arange(ds.num_classes), exp.evaluate.n_fake_per_class
        elif exp.task == "regression":
            self._val_split(ds)
            self.teacher = load_classifier(self.paths.teacher)
            self.labels, self.n = self._regression_val_labels(ds), exp.evaluate.n_fake_per_label
        else:
            self.labels, self.n = ds.normalise(validation_angles(exp)), exp.data.eval_per_angle
        # the real features (and a fixed fake pool, without fresh_fakes) do not depend on lambda: made once
        held = (ds.x_val, label(ds.y_val)) if len(ds.y_val) else (ds.x_train[:256], y_train[:256])
        self.data = ratio_data(
            self.phi,
            lambda y: sample(self.G, y, exp.gan.z_dim, p.batch_size_rs),
            (ds.x_train, y_train),
            held,
            p,
            self.zeta,
        )
        self.plain = self.measure(None)

    def defaults(self) -> dict[str, Any]:
        return {"dre.penalty": self.exp.dre.penalty}

    def suggest(self, trial) -> dict[str, Any]:
        return {"dre.penalty": trial.suggest_float("dre.penalty", 1e-4, 10.0, log=True)}

    def measure(self, sub) -> tuple[float, dict[str, float]]:
        from pipeline.subsample.subsampler import draw

        exp = self.exp
        with evaluation_rng(self.params.seed):
            x, y, stats = draw(
                self.G, exp.gan.z_dim, self.labels, self.n, sub, burnin=exp.dre.burnin, batch_size=exp.dre.batch_size_rs
            )
        extra = {} if stats is None else {"acceptance_rate": stats.summary()["acceptance_rate"]}
        if exp.task == "classification":
            from pipeline.metrics import fid

            return fid(self.teacher, self.ds.x_val, x), extra
        if exp.task == "regression":
            return self._label_score(self.teacher, self.ds, x, y), extra
        m = self._circle_metrics(x, y)
        return m["pct_high_quality"], {**extra, "w2_val": m["w2"]}

    def run(self, values: dict[str, Any], report: Report) -> tuple[float, dict[str, float]]:
        from pipeline.subsample.fit import fit_ratio
        from pipeline.subsample.subsampler import Subsampler
        from pipeline.utils import seed_everything

        p = with_values(self.params, self.experiment, values).experiment(self.experiment).dre
        seed_everything(self.params.seed)
        num_classes = self.ds.num_classes if self.exp.task == "classification" else 0

        due = checkpoints(p.steps)

        def check(step: int, net) -> None:
            if due(step):
                was = net.training
                report(step, self.measure(Subsampler(self.phi, net, self.zeta))[0])
                net.train(was)

        fitted = fit_ratio(self.data, self.method, p, num_classes=num_classes, y2h=self.y2h, check=check)
        value, extra = self.measure(Subsampler(self.phi, fitted.net.eval(), self.zeta))
        return value, {
            **extra,
            f"{self.objective}_without_subsampling": self.plain[0],
            **{f"dre_{k}": v for k, v in fitted.stats.items()},
        }


class NFakeStudy(Study):
    name = "n-fake"

    @classmethod
    def check(cls, params: Params, experiment: str, options: Options) -> None:
        if params.experiment(experiment).task == "circle":
            raise ParamsError(
                f"experiments.{experiment}: the n-fake study needs students (a classification or regression "
                "experiment, not circle)"
            )

    def goal(self) -> tuple[str, str]:
        self.classification = self.exp.task == "classification"
        self.key = "synthesize.n_fake_per_class" if self.classification else "synthesize.n_fake"
        return ("maximize", "student_val_accuracy") if self.classification else ("minimize", "student_val_mae")

    def load(self) -> None:
        from pipeline.artifacts import CLASS_VARIANT, load_classifier, load_generator, load_subsampler
        from pipeline.data import load_dataset
        from pipeline.distill.fit import fake_labels, students

        exp = self.exp
        self.ds = load_dataset(self.paths.prepared)
        self._val_split(self.ds)
        self.teacher = load_classifier(self.paths.teacher)
        self.G = load_generator(
            self.paths.generator(CLASS_VARIANT if self.classification else exp.synthesize.gan_variant)
        )
        self.sub = load_subsampler(self.paths, exp.synthesize.subsampling)
        with_fakes = [
            s
            for s in students(exp.student)
            if s.method is None and s.init == "scratch" and fake_labels(exp.task, s.data) not in (None, "oracle")
        ]
        if not with_fakes:
            raise ParamsError(
                f"experiments.{self.experiment}.student.variants: the n-fake study needs a cGAN-KD variant "
                "trained from scratch (student.init: scratch)"
            )
        self.student = with_fakes[0]

    def defaults(self) -> dict[str, Any]:
        s = self.exp.synthesize
        out = {self.key: s.n_fake_per_class if self.classification else s.n_fake}
        if self.options.rho:
            out["synthesize.rho"] = s.rho
        return out

    def suggest(self, trial) -> dict[str, Any]:
        n0 = self.defaults()[self.key]
        out = {self.key: trial.suggest_int(self.key, max(1, n0 // 10), n0 * 8, log=True)}
        if self.options.rho:
            out["synthesize.rho"] = trial.suggest_float("synthesize.rho", 0.05, 1.0)
        return out

    def run(self, values: dict[str, Any], report: Report) -> tuple[float, dict[str, float]]:
        from pipeline.distill.fit import fake_labels, fit_student, score
        from pipeline.distill.synthetic import synthetic_set
        from pipeline.ui import progress_bar

        exp = with_values(self.params, self.experiment, values).experiment(self.experiment)
        syn = synthetic_set(
            exp,
            self.ds,
            self.teacher,
            self.G,
            self.sub,
            self.params.seed,
            lambda what, total: progress_bar(f"{self.name} {what}", total),
        ).syn
        y = getattr(syn, str(fake_labels(exp.task, self.student.data)))
        fakes = (syn.x.half().float(), y)  # as the synthesize stage stores them

        due = checkpoints(exp.student.steps)

        def check(step: int, model) -> None:
            if due(step):
                report(step, score(exp.task, self.ds, model, "val"))

        model, _ = fit_student(
            exp, self.ds, self.student, teacher=self.teacher, fakes=fakes, seed=self.params.seed, check=check
        )
        return score(exp.task, self.ds, model, "val"), {"n_fakes_kept": float(len(y))}


STUDIES: dict[str, type[Study]] = {s.name: s for s in (VicinityStudy, DrePenaltyStudy, NFakeStudy)}
