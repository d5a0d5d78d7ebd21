"""student: the same student architecture, seed and schedule trained four ways
(real only, BLKD, cGAN-KD, cGAN-KD + BLKD) -> models/<experiment>/students/."""

from __future__ import annotations

from pipeline import tracking
from pipeline.data import load_dataset
from pipeline.distill.train import train_classifier
from pipeline.nets import build_classifier
from pipeline.params import Params
from pipeline.stages.common import Paths, accuracy, load_classifier, mae, save_classifier, write_json
from pipeline.stages.synthesize import load_synthetic
from pipeline.ui import info, progress_bar
from pipeline.utils import seed_everything

# variant -> (uses the processed fakes, distils the teacher's logits)
VARIANTS = {"real_only": (False, False), "blkd": (False, True), "cgan_kd": (True, False), "cgan_kd_blkd": (True, True)}
# regression variant -> labels of the fakes (None: no fakes)
REGRESSION_VARIANTS = {"real_only": None, "cgan_kd": "y_cond", "cgan_kd_adjusted": "y_teacher"}


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    if exp.task == "regression":
        return _run_regression(exp.student, params.seed, experiment, paths)
    p = exp.student
    ds = load_dataset(paths.prepared)
    teacher = load_classifier(paths.teacher)
    needs_fakes = any(VARIANTS[v][0] for v in p.variants)
    x_fake, y_fake = load_synthetic(paths) if needs_fakes else (None, None)
    results: dict[str, dict[str, float]] = {}
    with tracking.stage_run(experiment, "student", {"seed": params.seed, "student": p.model_dump(mode="json")}):
        for variant in p.variants:
            use_fakes, distil = VARIANTS[variant]
            n_train = len(ds.y_train) + (len(y_fake) if use_fakes else 0)
            seed_everything(params.seed)
            model = build_classifier(p.net, ds.channels, ds.num_classes, p.width)
            with tracking.stage_run(experiment, "student", {"variant": variant, "n_train": n_train}, run_name=f"student/{variant}", nested=True):
                with progress_bar(f"student[{experiment}/{variant}]", p.steps) as bar:
                    history = train_classifier(
                        model, ds.x_train, ds.y_train, steps=p.steps, batch_size=p.batch_size, lr=p.lr, momentum=p.momentum,
                        weight_decay=p.weight_decay, max_shift=p.max_shift if p.augment else 0,
                        loss="blkd" if distil else "ce", teacher=teacher if distil else None,
                        loss_kwargs=p.blkd.model_dump() if distil else None, progress=bar,
                        x_fake=x_fake if use_fakes else None, y_fake=y_fake if use_fakes else None, fake_fraction=p.fake_fraction,
                    )
                results[variant] = {"test_accuracy": accuracy(model, ds.x_test, ds.y_test), "n_train": n_train}
                if len(ds.y_val):
                    results[variant]["val_accuracy"] = accuracy(model, ds.x_val, ds.y_val)
                tracking.log_history(history, "train_")
                tracking.log_metrics({k: v for k, v in results[variant].items() if k != "n_train"})
            save_classifier(model, paths.students / f"{variant}.pt", net=p.net, in_channels=ds.channels, num_classes=ds.num_classes, width=p.width)
            info(f"student[{experiment}/{variant}]: test accuracy {results[variant]['test_accuracy']:.4f} ({n_train} training images)")
        tracking.log_metrics({f"{v}_test_accuracy": r["test_accuracy"] for v, r in results.items()})
    write_json(paths.metrics / "students.json", results)
    return results


def _run_regression(p, seed: int, experiment: str, paths: Paths) -> dict:
    """Regressors on normalised labels: real only, + fakes at their condition labels (cgan_kd),
    + fakes relabelled by the teacher (cgan_kd_adjusted). MAE in label units."""
    ds = load_dataset(paths.prepared)
    results: dict[str, dict[str, float]] = {}
    with tracking.stage_run(experiment, "student", {"seed": seed, "student": p.model_dump(mode="json")}):
        for variant in p.variants:
            label = REGRESSION_VARIANTS[variant]
            x_fake, y_fake = load_synthetic(paths, label) if label else (None, None)
            n_train = len(ds.y_train) + (0 if y_fake is None else len(y_fake))
            seed_everything(seed)
            model = build_classifier(p.net, ds.channels, 1, p.width)
            with tracking.stage_run(experiment, "student", {"variant": variant, "n_train": n_train}, run_name=f"student/{variant}", nested=True):
                with progress_bar(f"student[{experiment}/{variant}]", p.steps) as bar:
                    history = train_classifier(
                        model, ds.x_train, ds.normalise(ds.y_train), steps=p.steps, batch_size=p.batch_size, lr=p.lr,
                        momentum=p.momentum, weight_decay=p.weight_decay, max_shift=p.max_shift if p.augment else 0, loss=p.loss,
                        x_fake=x_fake, y_fake=y_fake, fake_fraction=p.fake_fraction, progress=bar,
                    )
                results[variant] = {"test_mae": mae(model, ds, ds.x_test, ds.y_test), "n_train": n_train}
                if len(ds.y_val):
                    results[variant]["val_mae"] = mae(model, ds, ds.x_val, ds.y_val)
                tracking.log_history(history, "train_")
                tracking.log_metrics({k: v for k, v in results[variant].items() if k != "n_train"})
            save_classifier(model, paths.students / f"{variant}.pt", net=p.net, in_channels=ds.channels, num_classes=1, width=p.width)
            info(f"student[{experiment}/{variant}]: test MAE {results[variant]['test_mae']:.4g} ({n_train} training images)")
        tracking.log_metrics({f"{v}_test_mae": r["test_mae"] for v, r in results.items()})
    write_json(paths.metrics / "students.json", results)
    return results
