"""student: the same student architecture, seed and schedule trained several ways -> models/<experiment>/students/.

Each entry of student.variants (the data: real only, real + the synthetic set, ...) alone and
with each KD method of student.methods ("X" and "cGAN-KD + X"); distill/fit.py names them. With
TAKD, the teacher assistant is trained first and saved beside them (assistant.pt)."""

from __future__ import annotations

import torch

from pipeline import tracking
from pipeline.artifacts import Paths, load_classifier, load_synthetic, save_classifier, write_json
from pipeline.data import load_dataset
from pipeline.distill.fit import best_step, fake_labels, fit_assistant, fit_student, score, students
from pipeline.distill.synthetic import oracle_fakes
from pipeline.params import Params
from pipeline.ui import info, progress_bar


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    p = exp.student
    classification = exp.task == "classification"
    metric = "accuracy" if classification else "mae"
    ds = load_dataset(paths.prepared)
    teacher = load_classifier(paths.teacher) if classification or p.methods else None
    results: dict[str, dict[str, float]] = {}
    trained: dict[str, torch.nn.Module] = {}  # the students so far: fine-tuned ones start from their base
    loaded: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # the synthetic set, by the labels a student trains on
    arch = {"in_channels": ds.channels, "num_classes": ds.num_classes if classification else 1}

    def record(name: str, model, history, n_train: int) -> None:
        results[name] = {f"test_{metric}": score(exp.task, ds, model, "test"), "n_train": n_train}
        if len(ds.y_val):
            results[name][f"val_{metric}"] = score(exp.task, ds, model, "val")
        results[name] |= best_step(history)
        tracking.log_history(history, "train_")
        tracking.log_metrics({k: v for k, v in results[name].items() if k != "n_train"})
        test = results[name][f"test_{metric}"]
        info(f"student[{experiment}/{name}]: test {metric} {test:.4g} ({n_train} training images)")

    with tracking.stage_run(experiment, "student", {"seed": params.seed, "student": p.model_dump(mode="json")}):
        assistant = None
        if "takd" in p.methods:  # TAKD's teacher assistant first: distilled from the teacher on real data
            tags = {"method": "blkd", "data": "real_only", "role": "teacher assistant"}
            with tracking.stage_run(
                experiment,
                "student",
                {"n_train": len(ds.y_train)},
                run_name="student/assistant",
                nested=True,
                tags=tags,
            ):
                with progress_bar(f"student[{experiment}/assistant]", p.steps) as bar:
                    assistant, history = fit_assistant(exp, ds, teacher, params.seed, progress=bar)
                record("assistant", assistant, history, len(ds.y_train))
            save_classifier(assistant, paths.students / "assistant.pt", net=p.takd.net, width=p.takd.width, **arch)
        for student in students(p):
            fakes = None
            label = fake_labels(exp.task, student.data)
            if label is not None:
                if label not in loaded:
                    if label == "oracle":  # as many perfect fakes as the synthetic set keeps
                        loaded[label] = oracle_fakes(exp, ds, len(load_synthetic(paths, "y_cond")[1]), params.seed)
                    else:
                        loaded[label] = load_synthetic(paths, label)
                fakes = loaded[label]
            n_train = len(ds.y_train) + (0 if fakes is None else len(fakes[1]))
            tags = {"method": student.method or "none", "data": student.data, "init": student.init}
            with tracking.stage_run(
                experiment,
                "student",
                {"variant": student.name, "n_train": n_train},
                run_name=f"student/{student.name}",
                nested=True,
                tags=tags,
            ):
                with progress_bar(f"student[{experiment}/{student.name}]", p.steps) as bar:
                    model, history = fit_student(
                        exp,
                        ds,
                        student,
                        teacher=teacher,
                        assistant=assistant,
                        fakes=fakes,
                        seed=params.seed,
                        progress=bar,
                        base=trained.get(student.base) if student.init == "real_only" else None,
                    )
                record(student.name, model, history, n_train)
            trained[student.name] = model
            save_classifier(model, paths.students / f"{student.name}.pt", net=p.net, width=p.width, **arch)
        tracking.log_metrics({f"{v}_test_{metric}": r[f"test_{metric}"] for v, r in results.items()})
    write_json(paths.metrics / "students.json", results)
    return results
