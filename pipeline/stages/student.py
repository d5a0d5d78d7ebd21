"""student: the same student architecture, seed and schedule trained several ways -> models/<experiment>/students/.

Classification: real only, BLKD, cGAN-KD, cGAN-KD + BLKD. Regression (labels normalised, MAE
in label units): real only, + fakes at their condition labels (cgan_kd), + fakes relabelled by
the teacher (cgan_kd_adjusted)."""

from __future__ import annotations

import torch

from pipeline import tracking
from pipeline.artifacts import Paths, load_classifier, load_synthetic, save_classifier, write_json
from pipeline.data import load_dataset
from pipeline.distill.fit import REGRESSION_VARIANTS, best_step, fit_student, score, uses_fakes
from pipeline.distill.synthetic import oracle_fakes
from pipeline.params import Params
from pipeline.ui import info, progress_bar


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
                    if label == "oracle":  # as many perfect fakes as the synthetic set keeps
                        loaded[label] = oracle_fakes(exp, ds, len(load_synthetic(paths, "y_cond")[1]), params.seed)
                    else:
                        loaded[label] = load_synthetic(paths, label)
                fakes = loaded[label]
            n_train = len(ds.y_train) + (0 if fakes is None else len(fakes[1]))
            with tracking.stage_run(
                experiment,
                "student",
                {"variant": variant, "n_train": n_train},
                run_name=f"student/{variant}",
                nested=True,
            ):
                with progress_bar(f"student[{experiment}/{variant}]", p.steps) as bar:
                    model, history = fit_student(
                        exp, ds, variant, teacher=teacher, fakes=fakes, seed=params.seed, progress=bar
                    )
                results[variant] = {f"test_{metric}": score(exp.task, ds, model, "test"), "n_train": n_train}
                if len(ds.y_val):
                    results[variant][f"val_{metric}"] = score(exp.task, ds, model, "val")
                results[variant] |= best_step(history)
                tracking.log_history(history, "train_")
                tracking.log_metrics({k: v for k, v in results[variant].items() if k != "n_train"})
            save_classifier(
                model,
                paths.students / f"{variant}.pt",
                net=p.net,
                in_channels=ds.channels,
                num_classes=ds.num_classes if classification else 1,
                width=p.width,
            )
            info(
                f"student[{experiment}/{variant}]: test {metric} {results[variant][f'test_{metric}']:.4g} "
                f"({n_train} training images)"
            )
        tracking.log_metrics({f"{v}_test_{metric}": r[f"test_{metric}"] for v, r in results.items()})
    write_json(paths.metrics / "students.json", results)
    return results
