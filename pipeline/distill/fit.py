"""Fitting and scoring teachers and students: one training path for classifiers and regressors.

A teacher is fitted on the real training split. A student is the same student net, seed and
schedule trained on one kind of data (`student.variants`) with or without one KD method
(`student.methods`, distill/methods.py). The data: classification: real only, or real + the
synthetic set (cgan_kd); regression (labels normalised, MAE in label units): real only, + fakes
at their condition labels (cgan_kd), + fakes relabelled by the teacher (cgan_kd_adjusted), +
perfect fakes (oracle). A student's name is its data (real_only, cgan_kd, ...), the method on real
data (blkd, fitnet, ...), or both joined (cgan_kd_blkd, cgan_kd_fitnet, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from pipeline.distill.methods import build_method
from pipeline.distill.train import train_classifier
from pipeline.nets import build_classifier
from pipeline.nets.backbone import Backbone
from pipeline.report import FINE_TUNED
from pipeline.utils import Progress, predict, seed_everything, watched

# data -> labels of its fakes: "y" (the synthetic set's training labels), regression: "y_cond" /
# "y_teacher", or "oracle" (as many fresh renders with their true labels as the synthetic set
# holds, the most any GAN could give: built-in chairs only); None: no fakes
FAKE_LABELS = {
    "classification": {"real_only": None, "cgan_kd": "y"},
    "regression": {"real_only": None, "cgan_kd": "y_cond", "cgan_kd_adjusted": "y_teacher", "oracle": "oracle"},
}


class Student(NamedTuple):
    name: str
    data: str  # an entry of student.variants
    method: str | None  # an entry of student.methods, or None: the task loss alone
    init: str = "scratch"  # or "real_only": fine-tuned from the student `base` (an entry of student.init)

    @property
    def base(self) -> str:
        """The real-data student of the same method, which a real_only-initialised one starts from."""
        return self.method or "real_only"


def students(p) -> list[Student]:
    """Every student the params ask for, in training order: each entry of p.variants alone, then
    with each method; with p.init real_only, each student on fakes again as <name>_ft, fine-tuned
    from its base (trained before it). With p.init real_only alone, the scratch students on fakes
    are left out."""
    out = []
    for data in p.variants:
        for method in (None, *p.methods):
            name = data if method is None else method if data == "real_only" else f"{data}_{method}"
            out.append(Student(name, data, method))
    on_fakes = [s for s in out if s.data != "real_only"]
    if "scratch" not in p.init:
        out = [s for s in out if s.data == "real_only"]
    if "real_only" in p.init:
        out += [s._replace(name=s.name + FINE_TUNED, init="real_only") for s in on_fakes]
    return out


def fake_labels(task: str, data: str) -> str | None:
    return FAKE_LABELS[task][data]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x).argmax(1) == y).float().mean())


def mae(model: nn.Module, ds, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean absolute error in label units of a regressor trained on normalised labels."""
    return float((ds.denormalise(predict(model, x).view(-1)) - y).abs().mean())


def score(task: str, ds, model: nn.Module, split: str) -> float:
    """Accuracy (classification) or MAE in label units (regression) on a split ("train", "val" or "test")."""
    x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
    return accuracy(model, x, y) if task == "classification" else mae(model, ds, x, y)


def validation_score(task: str, ds) -> Callable[[nn.Module], float] | None:
    """The score a trainer keeps the best weights by (higher is better): validation accuracy, or
    minus the validation MAE in label units; None without a validation split."""
    if not len(ds.y_val):
        return None
    sign = 1 if task == "classification" else -1
    return lambda model: sign * score(task, ds, model, "val")


def best_step(history: list[dict[str, float]]) -> dict[str, float]:
    """{"best_step": ...} when the training kept its best validation weights, else {}."""
    return {"best_step": history[-1]["best_step"]} if history and "best_step" in history[-1] else {}


def method_section(p, method: str):
    """The params section KD `method` reads from student params p (TAKD is BLKD from the assistant)."""
    return p.blkd if method in ("blkd", "takd") else getattr(p, method)


def fit(
    p,
    task: str,
    ds,
    *,
    seed: int,
    teacher: Backbone | None = None,
    method: str | None = None,
    fakes: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: Progress | None = None,
    check: Callable[[int, nn.Module], None] | None = None,
    start: nn.Module | None = None,
) -> tuple[Backbone, list[dict[str, float]]]:
    """A fresh `p.net` (teacher or student params) trained from `seed` on the real training split
    (regression: on normalised labels, with `p.loss`), plus `fakes` (x, training labels) as a
    `p.fake_fraction` share of each batch when given, distilling `teacher` by the KD `method` (its
    section of p) when given. With `start` (a trained model of the same net), the model starts
    from its weights and fakes are drawn over the union of real and fakes (fine-tuning, as the
    reference cGAN-KD does), with the same schedule from `p.finetune_lr` when set. `check(step,
    model)` runs at each logged step (a study measures the model there); with `p.keep_best` the
    model ends at its best validation step."""
    classification = task == "classification"
    seed_everything(seed)
    model = build_classifier(p.net, ds.channels, ds.num_classes if classification else 1, p.width)
    if start is not None:
        model.load_state_dict(start.state_dict())
    x_fake, y_fake = fakes if fakes is not None else (None, None)
    kd = None
    if method is not None:
        if teacher is None:
            raise ValueError(f"KD method {method} needs a teacher")
        n_data = len(ds.y_train) + (0 if y_fake is None else len(y_fake))
        kd = build_method(method, method_section(p, method), model, teacher, ds.x_train[:2], n_data)
    history = train_classifier(
        model,
        ds.x_train,
        ds.y_train if classification else ds.normalise(ds.y_train),
        steps=p.steps,
        batch_size=p.batch_size,
        lr=p.lr if start is None or getattr(p, "finetune_lr", None) is None else p.finetune_lr,
        momentum=p.momentum,
        weight_decay=p.weight_decay,
        max_shift=p.max_shift if p.augment else 0,
        loss="ce" if classification else p.loss,
        method=kd,
        teacher=teacher if kd is not None else None,
        x_fake=x_fake,
        y_fake=y_fake,
        fake_fraction=None if start is not None else getattr(p, "fake_fraction", None),
        progress=watched(progress, check, model),
        log_every=p.eval_every,
        validate=validation_score(task, ds) if p.keep_best else None,
    )
    return model, history


def fit_assistant(exp, ds, teacher: Backbone, seed: int, progress: Progress | None = None) -> tuple[Backbone, list]:
    """TAKD's teacher assistant: student.takd's net, distilled from the teacher by BLKD on the real
    training data with the student's schedule."""
    p = exp.student
    return fit(
        p.model_copy(update={"net": p.takd.net, "width": p.takd.width}),
        exp.task,
        ds,
        seed=seed,
        teacher=teacher,
        method="blkd",
        progress=progress,
    )


def fit_student(
    exp,
    ds,
    student: Student,
    *,
    teacher: Backbone | None,
    fakes: tuple[torch.Tensor, torch.Tensor] | None,
    seed: int,
    assistant: Backbone | None = None,
    progress: Progress | None = None,
    check: Callable[[int, nn.Module], None] | None = None,
    base: nn.Module | None = None,
) -> tuple[Backbone, list[dict[str, float]]]:
    """One student of `exp.student` (the fakes used only when its data has them; TAKD distils the
    assistant instead of the teacher); a real_only-initialised one fine-tunes `base`, the trained
    student named student.base. The student stage and the n-fake study share it."""
    if student.init == "real_only" and base is None:
        raise ValueError(f"student {student.name} fine-tunes {student.base}: pass that trained student as base")
    return fit(
        exp.student,
        exp.task,
        ds,
        seed=seed,
        teacher=assistant if student.method == "takd" else teacher,
        method=student.method,
        fakes=fakes if fake_labels(exp.task, student.data) is not None else None,
        progress=progress,
        check=check,
        start=base if student.init == "real_only" else None,
    )
