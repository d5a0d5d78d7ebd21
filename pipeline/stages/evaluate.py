"""evaluate: GAN quality in the evaluation classifier's space (the evalnets stage's: neither the
teacher nor DRE's feature net) and the student table -> metrics/<experiment>.json and
metrics/<experiment>.md. The teacher's accuracy on the fakes is kept beside: it is what the
cGAN-KD filter works with."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from pipeline import tracking
from pipeline.artifacts import (
    CLASS_VARIANT,
    Paths,
    load_classifier,
    load_generator,
    load_subsampler,
    read_json,
    write_json,
    write_text,
)
from pipeline.data import load_dataset
from pipeline.errors import CheckpointError
from pipeline.metrics import classifier_accuracy, fid, inception_fid, inception_score, intra_fid
from pipeline.metrics.variants import MetricsOf, evaluation_labels, variant_rows
from pipeline.params import Params
from pipeline.report import equal_labels_text, gan_table, headline, student_table
from pipeline.subsample.subsampler import METHODS
from pipeline.ui import info, progress_bar
from pipeline.utils import predict, seed_everything


def summary_markdown(
    experiment: str,
    gan: dict[str, dict[str, float]],
    gan_equal: dict[str, dict[str, float]],
    reference: dict[str, float],
    teacher_acc: float,
    students: dict[str, dict],
) -> str:
    lines = [
        f"## {experiment}",
        "",
        f"Teacher test accuracy: {teacher_acc:.4f}",
        "",
        *gan_table(gan),
        "",
        "+dre / +cdre: the fakes drawn by DRE-F-SP+RS / cDRE-F-cSP+RS. FID, intra-FID and IS here use the "
        "evaluation classifier (the evalnets stage's; not the teacher, not DRE's feature net, not Inception; IS "
        "over 10 splits): compare them within this experiment only (real training vs test images: FID "
        f"{reference['fid_evalnet_real_train_vs_test']:.4g}, IS of the test images "
        f"{reference['is_evalnet_real_test']:.4g}).",
        "",
        *equal_labels_text(gan, gan_equal),
        *student_table(students, "accuracy", ".4f"),
        "",
    ]
    return "\n".join(lines)


def eval_classifier(paths: Paths) -> torch.nn.Module:
    """The evaluation classifier of the evalnets stage."""
    path = paths.eval_nets / "classifier.pt"
    if not path.exists():
        raise CheckpointError(f"{path}: evaluation classifier not found (run the evalnets stage first)")
    return load_classifier(path)


def gan_rows(
    exp, paths: Paths, experiment: str, variant: str, labels: torch.Tensor, n: int, metrics_of: MetricsOf
) -> tuple[dict, dict]:
    """variant_rows of one GAN variant, from its checkpoint; for the variant the dre stage
    subsampled, also through DRE-F-SP+RS and cDRE-F-cSP+RS (with the equal-label rows)."""
    G = load_generator(paths.generator(variant))
    methods = METHODS if variant == exp.dre_variant else ("none",)
    return variant_rows(
        G,
        variant,
        {m: partial(load_subsampler, paths, m) for m in methods},
        labels,
        n,
        metrics_of,
        z_dim=exp.gan.z_dim,
        burnin=exp.dre.burnin,
        batch_size=exp.dre.batch_size_rs,
        bar=lambda name, total: progress_bar(f"evaluate[{experiment}] {name}", total),
    )


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    if exp.task == "translation":
        from pipeline.stages import translation

        return translation.evaluate(params, experiment, paths)
    if exp.task == "ganzoo":
        from pipeline.stages import evaluate_zoo

        return evaluate_zoo.run(params, experiment, paths)
    if exp.task != "classification":
        from pipeline.stages import evaluate_continuous

        return evaluate_continuous.run(params, experiment, paths)
    p = exp.evaluate
    ds = load_dataset(paths.prepared)
    teacher = load_classifier(paths.teacher)
    judge = eval_classifier(paths)
    seed_everything(params.seed)

    def metrics_of(x_fake: torch.Tensor, y_fake: torch.Tensor, _keep: torch.Tensor) -> dict[str, float]:
        intra, _ = intra_fid(judge, ds.x_test, ds.y_test, x_fake, y_fake)
        row = {
            "fid_evalnet": fid(judge, ds.x_test, x_fake),
            "intra_fid_evalnet": intra,
            "is_evalnet": inception_score(F.softmax(predict(judge, x_fake), 1))[0],
            "evalnet_accuracy_on_fakes": classifier_accuracy(judge, x_fake, y_fake),
            "teacher_accuracy_on_fakes": classifier_accuracy(teacher, x_fake, y_fake),
        }
        if p.inception_weights is not None:
            row["fid_inception"] = inception_fid(p.inception_weights, ds.x_test, x_fake)
        return row

    gan, gan_equal = gan_rows(
        exp, paths, experiment, CLASS_VARIANT, evaluation_labels(exp, ds), p.n_fake_per_class, metrics_of
    )
    reference = {
        "fid_evalnet_real_train_vs_test": fid(judge, ds.x_test, ds.x_train),
        "is_evalnet_real_test": inception_score(F.softmax(predict(judge, ds.x_test), 1))[0],
    }
    teacher_acc = read_json(paths.metrics / "teacher.json")["test_accuracy"]
    students = read_json(paths.metrics / "students.json")
    summary = {
        "gan": gan,
        "gan_equal_labels": gan_equal,
        "reference": reference,
        "teacher": {"test_accuracy": teacher_acc},
        "students": students,
    }
    with tracking.stage_run(experiment, "evaluate", {"seed": params.seed, "evaluate": p.model_dump(mode="json")}):
        tracking.log_metrics(
            {
                **{f"{v}_{k}": x for v, m in gan.items() for k, x in m.items()},
                **reference,
                "teacher_test_accuracy": teacher_acc,
                **{f"student_{v}_test_accuracy": r["test_accuracy"] for v, r in students.items()},
            }
        )
        write_json(paths.summary_json, summary)
        write_json(paths.headline, headline("classification", summary, exp.dre_variant))
        write_text(paths.summary_md, summary_markdown(experiment, gan, gan_equal, reference, teacher_acc, students))
        tracking.log_artifact(paths.summary_md)
    info(
        f"evaluate[{experiment}]: fid_evalnet "
        + ", ".join(f"{v} {m['fid_evalnet']:.3f}" for v, m in gan.items())
        + f" -> {paths.summary_md}"
    )
    return summary
