"""teacher: trains the teacher (classifier or regressor) on the real (limited) training data."""

from __future__ import annotations

from pipeline import tracking
from pipeline.data import load_dataset
from pipeline.distill.train import train_classifier
from pipeline.nets import build_classifier
from pipeline.params import Params
from pipeline.stages.common import Paths, accuracy, best_step, mae, save_classifier, validation_score, write_json
from pipeline.ui import info, progress_bar
from pipeline.utils import seed_everything


def run(params: Params, experiment: str, paths: Paths) -> dict:
    """A classifier, or for a regression set a regressor of the normalised label (scalar head,
    exp.teacher.loss; MAE in label units)."""
    exp = params.experiment(experiment)
    p = exp.teacher
    classification = exp.task == "classification"
    ds = load_dataset(paths.prepared)
    n_out = ds.num_classes if classification else 1
    seed_everything(params.seed)
    model = build_classifier(p.net, ds.channels, n_out, p.width)
    name, score = ("accuracy", accuracy) if classification else ("mae", lambda m, x, y: mae(m, ds, x, y))
    with tracking.stage_run(experiment, "teacher", {"seed": params.seed, "teacher": p.model_dump(mode="json")}):
        with progress_bar(f"teacher[{experiment}]", p.steps) as bar:
            history = train_classifier(
                model, ds.x_train, ds.y_train if classification else ds.normalise(ds.y_train), steps=p.steps,
                batch_size=p.batch_size, lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay,
                max_shift=p.max_shift if p.augment else 0, loss="ce" if classification else p.loss, progress=bar,
                log_every=p.eval_every, validate=validation_score(exp.task, ds) if p.keep_best else None,
            )
        metrics = {f"test_{name}": score(model, ds.x_test, ds.y_test), f"train_{name}": score(model, ds.x_train, ds.y_train)}
        if len(ds.y_val):
            metrics[f"val_{name}"] = score(model, ds.x_val, ds.y_val)
        metrics |= best_step(history)
        tracking.log_history(history, "train_")
        tracking.log_metrics(metrics)
    save_classifier(model, paths.teacher, net=p.net, in_channels=ds.channels, num_classes=n_out, width=p.width)
    write_json(paths.metrics / "teacher.json", metrics)
    info(f"teacher[{experiment}]: test {name} {metrics[f'test_{name}']:.4g}" + ("" if classification else f" ({ds.label_name})"))
    return metrics
