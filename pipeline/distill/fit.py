"""Fitting and scoring teachers and students: one training path for classifiers and regressors.

A teacher is fitted on the real training split. A student variant is the same student net, seed
and schedule trained one way: classification: real only, BLKD, cGAN-KD, cGAN-KD + BLKD;
regression (labels normalised, MAE in label units): real only, + fakes at their condition labels
(cgan_kd), + fakes relabelled by the teacher (cgan_kd_adjusted), + perfect fakes (oracle).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pipeline.distill.train import train_classifier
from pipeline.nets import build_classifier
from pipeline.utils import Progress, predict, seed_everything, watched

# variant -> (uses the processed fakes, distils the teacher's logits)
VARIANTS = {"real_only": (False, False), "blkd": (False, True), "cgan_kd": (True, False), "cgan_kd_blkd": (True, True)}
# regression variant -> labels of the fakes (None: no fakes; "oracle": as many fresh renders with
# their true labels as the synthetic set holds, the most any GAN could give: built-in chairs only)
REGRESSION_VARIANTS = {"real_only": None, "cgan_kd": "y_cond", "cgan_kd_adjusted": "y_teacher", "oracle": "oracle"}


def uses_fakes(task: str, variant: str) -> bool:
    return VARIANTS[variant][0] if task == "classification" else REGRESSION_VARIANTS[variant] is not None


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


def fit(
    p,
    task: str,
    ds,
    *,
    seed: int,
    teacher: nn.Module | None = None,
    fakes: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: Progress | None = None,
    check: Callable[[int, nn.Module], None] | None = None,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """A fresh `p.net` (teacher or student params) trained from `seed` on the real training split
    (regression: on normalised labels, with `p.loss`), plus `fakes` (x, training labels) as a
    `p.fake_fraction` share of each batch when given, and distilling `teacher`'s logits by BLKD
    when given (classification). `check(step, model)` runs at each logged step (a study measures
    the model there); with `p.keep_best` the model ends at its best validation step."""
    classification = task == "classification"
    seed_everything(seed)
    model = build_classifier(p.net, ds.channels, ds.num_classes if classification else 1, p.width)
    x_fake, y_fake = fakes if fakes is not None else (None, None)
    history = train_classifier(
        model,
        ds.x_train,
        ds.y_train if classification else ds.normalise(ds.y_train),
        steps=p.steps,
        batch_size=p.batch_size,
        lr=p.lr,
        momentum=p.momentum,
        weight_decay=p.weight_decay,
        max_shift=p.max_shift if p.augment else 0,
        loss=("blkd" if teacher is not None else "ce") if classification else p.loss,
        teacher=teacher,
        loss_kwargs=p.blkd.model_dump() if teacher is not None else None,
        x_fake=x_fake,
        y_fake=y_fake,
        fake_fraction=getattr(p, "fake_fraction", None),
        progress=watched(progress, check, model),
        log_every=p.eval_every,
        validate=validation_score(task, ds) if p.keep_best else None,
    )
    return model, history


def fit_student(
    exp,
    ds,
    variant: str,
    *,
    teacher: nn.Module | None,
    fakes: tuple[torch.Tensor, torch.Tensor] | None,
    seed: int,
    progress: Progress | None = None,
    check: Callable[[int, nn.Module], None] | None = None,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """One student variant of `exp.student` (the fakes and the teacher used only when the variant
    uses them). The student stage and the n-fake study share it."""
    distil = exp.task == "classification" and VARIANTS[variant][1]
    return fit(
        exp.student,
        exp.task,
        ds,
        seed=seed,
        teacher=teacher if distil else None,
        fakes=fakes if uses_fakes(exp.task, variant) else None,
        progress=progress,
        check=check,
    )
