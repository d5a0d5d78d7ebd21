"""teacher: trains the teacher (classifier or regressor) on the real (limited) training data."""

from __future__ import annotations

from pipeline import tracking
from pipeline.artifacts import Paths, save_classifier, write_json
from pipeline.data import load_dataset
from pipeline.distill.fit import best_step, fit, score
from pipeline.params import Params
from pipeline.ui import info, progress_bar


def run(params: Params, experiment: str, paths: Paths) -> dict:
    """A classifier, or for a regression set a regressor of the normalised label (scalar head,
    exp.teacher.loss; MAE in label units)."""
    exp = params.experiment(experiment)
    p = exp.teacher
    task = "regression" if exp.task == "regression" else "classification"  # ganzoo: the evaluation classifier
    classification = task == "classification"
    ds = load_dataset(paths.prepared)
    name = "accuracy" if classification else "mae"
    with tracking.stage_run(experiment, "teacher", {"seed": params.seed, "teacher": p.model_dump(mode="json")}):
        with progress_bar(f"teacher[{experiment}]", p.steps) as bar:
            model, history = fit(p, task, ds, seed=params.seed, progress=bar)
        metrics = {
            f"{split}_{name}": score(task, ds, model, split)
            for split in ("test", "train", *(("val",) if len(ds.y_val) else ()))
        }
        metrics |= best_step(history)
        tracking.log_history(history, "train_")
        tracking.log_metrics(metrics)
    save_classifier(
        model,
        paths.teacher,
        net=p.net,
        in_channels=ds.channels,
        num_classes=ds.num_classes if classification else 1,
        width=p.width,
    )
    write_json(paths.metrics / "teacher.json", metrics)
    info(
        f"teacher[{experiment}]: test {name} {metrics[f'test_{name}']:.4g}"
        + ("" if classification else f" ({ds.label_name})")
    )
    return metrics
