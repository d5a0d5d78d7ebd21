"""teacher: trains the teacher classifier on the real (limited) training data."""

from __future__ import annotations


from pipeline import tracking
from pipeline.data import load_dataset
from pipeline.distill.train import train_classifier
from pipeline.nets import build_classifier
from pipeline.params import Params
from pipeline.stages.common import Paths, accuracy, mae, save_classifier, write_json
from pipeline.ui import info, progress_bar
from pipeline.utils import seed_everything


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    if exp.task == "regression":
        return _run_regression(exp.teacher, params.seed, experiment, paths)
    p = exp.teacher
    ds = load_dataset(paths.prepared)
    seed_everything(params.seed)
    model = build_classifier(p.net, ds.channels, ds.num_classes, p.width)
    with tracking.stage_run(experiment, "teacher", {"seed": params.seed, "teacher": p.model_dump(mode="json")}):
        with progress_bar(f"teacher[{experiment}]", p.steps) as bar:
            history = train_classifier(
                model, ds.x_train, ds.y_train, steps=p.steps, batch_size=p.batch_size, lr=p.lr, momentum=p.momentum,
                weight_decay=p.weight_decay, max_shift=p.max_shift if p.augment else 0, progress=bar,
            )
        metrics = {"test_accuracy": accuracy(model, ds.x_test, ds.y_test), "train_accuracy": accuracy(model, ds.x_train, ds.y_train)}
        if len(ds.y_val):
            metrics["val_accuracy"] = accuracy(model, ds.x_val, ds.y_val)
        tracking.log_history(history, "train_")
        tracking.log_metrics(metrics)
    save_classifier(model, paths.teacher, net=p.net, in_channels=ds.channels, num_classes=ds.num_classes, width=p.width)
    write_json(paths.metrics / "teacher.json", metrics)
    info(f"teacher[{experiment}]: test accuracy {metrics['test_accuracy']:.4f}")
    return metrics


def _run_regression(p, seed: int, experiment: str, paths: Paths) -> dict:
    """A regressor of the normalised label (scalar head); MAE in label units."""
    ds = load_dataset(paths.prepared)
    seed_everything(seed)
    model = build_classifier(p.net, ds.channels, 1, p.width)
    with tracking.stage_run(experiment, "teacher", {"seed": seed, "teacher": p.model_dump(mode="json")}):
        with progress_bar(f"teacher[{experiment}]", p.steps) as bar:
            history = train_classifier(
                model, ds.x_train, ds.normalise(ds.y_train), steps=p.steps, batch_size=p.batch_size, lr=p.lr, momentum=p.momentum,
                weight_decay=p.weight_decay, max_shift=p.max_shift if p.augment else 0, loss=p.loss, progress=bar,
            )
        metrics = {"test_mae": mae(model, ds, ds.x_test, ds.y_test), "train_mae": mae(model, ds, ds.x_train, ds.y_train)}
        if len(ds.y_val):
            metrics["val_mae"] = mae(model, ds, ds.x_val, ds.y_val)
        tracking.log_history(history, "train_")
        tracking.log_metrics(metrics)
    save_classifier(model, paths.teacher, net=p.net, in_channels=ds.channels, num_classes=1, width=p.width)
    write_json(paths.metrics / "teacher.json", metrics)
    info(f"teacher[{experiment}]: test MAE {metrics['test_mae']:.4g} ({ds.label_name})")
    return metrics
