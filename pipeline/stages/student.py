"""student: the same student architecture, seed and schedule trained several ways -> models/<experiment>/students/.

Classification: real only, BLKD, cGAN-KD, cGAN-KD + BLKD. Regression (labels normalised, MAE
in label units): real only, + fakes at their condition labels (cgan_kd), + fakes relabelled by
the teacher (cgan_kd_adjusted)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from pipeline import tracking
from pipeline.data import load_dataset
from pipeline.distill.train import train_classifier
from pipeline.nets import build_classifier
from pipeline.params import Params
from pipeline.stages.common import Paths, accuracy, best_step, load_classifier, mae, save_classifier, validation_score, write_json
from pipeline.stages.synthesize import load_synthetic
from pipeline.ui import info, progress_bar
from pipeline.utils import Progress, seed_everything, watched

# variant -> (uses the processed fakes, distils the teacher's logits)
VARIANTS = {"real_only": (False, False), "blkd": (False, True), "cgan_kd": (True, False), "cgan_kd_blkd": (True, True)}
# regression variant -> labels of the fakes (None: no fakes; "oracle": as many fresh renders with
# their true labels as the synthetic set holds, the most any GAN could give: built-in chairs only)
REGRESSION_VARIANTS = {"real_only": None, "cgan_kd": "y_cond", "cgan_kd_adjusted": "y_teacher", "oracle": "oracle"}


def uses_fakes(task: str, variant: str) -> bool:
    return VARIANTS[variant][0] if task == "classification" else REGRESSION_VARIANTS[variant] is not None


def fit_student(exp, ds, variant: str, *, teacher: torch.nn.Module | None, fakes: tuple[torch.Tensor, torch.Tensor] | None,
                seed: int, progress: Progress | None = None,
                check: Callable[[int, torch.nn.Module], None] | None = None) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """Train one student variant from `seed` on the real training split (+ `fakes` when the variant
    uses them: processed fakes and their training labels). `check(step, model)` runs at each logged
    step (the n-fake study measures the student there). The stage and the study share it."""
    p = exp.student
    classification = exp.task == "classification"
    distil = classification and VARIANTS[variant][1]
    x_fake, y_fake = fakes if fakes is not None and uses_fakes(exp.task, variant) else (None, None)
    seed_everything(seed)
    model = build_classifier(p.net, ds.channels, ds.num_classes if classification else 1, p.width)

    history = train_classifier(
        model, ds.x_train, ds.y_train if classification else ds.normalise(ds.y_train), steps=p.steps, batch_size=p.batch_size,
        lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay, max_shift=p.max_shift if p.augment else 0,
        loss=("blkd" if distil else "ce") if classification else p.loss, teacher=teacher if distil else None,
        loss_kwargs=p.blkd.model_dump() if distil else None, x_fake=x_fake, y_fake=y_fake, fake_fraction=p.fake_fraction,
        progress=watched(progress, check, model), log_every=p.eval_every,
        validate=validation_score(exp.task, ds) if p.keep_best else None,
    )
    return model, history


def scores(exp, ds, model: torch.nn.Module, split: str) -> float:
    """Accuracy (classification) or MAE in label units (regression) on a split ("val" or "test")."""
    x, y = (ds.x_val, ds.y_val) if split == "val" else (ds.x_test, ds.y_test)
    return accuracy(model, x, y) if exp.task == "classification" else mae(model, ds, x, y)


def _oracle(exp, ds, paths: Paths, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Perfect fakes: fresh renders of the experiment's chairs, as many as the synthetic set keeps,
    at yaw uniform over the training label range, with their true (normalised) labels."""
    from pipeline.data.chairs import render_uniform

    n = len(load_synthetic(paths, "y_cond")[1])
    x, y = render_uniform(n, float(ds.y_train.min()), float(ds.y_train.max()), exp.data.n_models, exp.data.image_size, seed, seed + 1)
    return x, ds.normalise(y)


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    p = exp.student
    classification = exp.task == "classification"
    metric = "accuracy" if classification else "mae"
    ds = load_dataset(paths.prepared)
    teacher = load_classifier(paths.teacher) if classification else None
    results: dict[str, dict[str, float]] = {}
    loaded: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # the synthetic set, by the labels a variant trains on
    with tracking.stage_run(experiment, "student", {"seed": params.seed, "student": p.model_dump(mode="json")}):
        for variant in p.variants:
            fakes = None
            if uses_fakes(exp.task, variant):
                label = "y" if classification else REGRESSION_VARIANTS[variant]
                if label not in loaded:
                    loaded[label] = _oracle(exp, ds, paths, params.seed) if label == "oracle" else load_synthetic(paths, label)
                fakes = loaded[label]
            n_train = len(ds.y_train) + (0 if fakes is None else len(fakes[1]))
            with tracking.stage_run(experiment, "student", {"variant": variant, "n_train": n_train}, run_name=f"student/{variant}", nested=True):
                with progress_bar(f"student[{experiment}/{variant}]", p.steps) as bar:
                    model, history = fit_student(exp, ds, variant, teacher=teacher, fakes=fakes, seed=params.seed, progress=bar)
                results[variant] = {f"test_{metric}": scores(exp, ds, model, "test"), "n_train": n_train}
                if len(ds.y_val):
                    results[variant][f"val_{metric}"] = scores(exp, ds, model, "val")
                results[variant] |= best_step(history)
                tracking.log_history(history, "train_")
                tracking.log_metrics({k: v for k, v in results[variant].items() if k != "n_train"})
            save_classifier(model, paths.students / f"{variant}.pt", net=p.net, in_channels=ds.channels,
                            num_classes=ds.num_classes if classification else 1, width=p.width)
            info(f"student[{experiment}/{variant}]: test {metric} {results[variant][f'test_{metric}']:.4g} ({n_train} training images)")
        tracking.log_metrics({f"{v}_test_{metric}": r[f"test_{metric}"] for v, r in results.items()})
    write_json(paths.metrics / "students.json", results)
    return results
