"""evaluate for continuous labels: every GAN variant against the others, and the students.

circle: % high-quality samples, % recovered modes and the 2-Wasserstein distance at the unseen
evaluation angles. Image regression (chairs, RC-49, ...): with the evalnets stage's evaluation
regressor and attribute classifier (trained once on every real image, as the CcGAN paper does),
Label Score = mean |regressor(fake) - y| in label units; FID and intra-FID over label
bins on the regressor's features (named *_eval_regressor_features); Diversity = entropy of the
predicted attribute (e.g. chair model) at each label, averaged; Label Score within each label
bin too (a table in the report and a plot in MLflow: where along the range G follows its
label). Then the students' MAE.
"""

from __future__ import annotations

import math
import tempfile
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

import torch

from pipeline import tracking
from pipeline.artifacts import Paths, load_classifier, load_synthetic, read_json, write_json, write_text
from pipeline.data import load_dataset
from pipeline.errors import CheckpointError
from pipeline.figures import save_curves
from pipeline.metrics import (
    binned_fid,
    circle_metrics,
    counts_by_label,
    diversity,
    label_score,
    label_score_by_bin,
)
from pipeline.metrics.variants import evaluation_labels
from pipeline.params import Params
from pipeline.report import equal_labels_text, gan_table, headline, student_table
from pipeline.stages.evaluate import gan_rows
from pipeline.ui import info
from pipeline.utils import predict, seed_everything


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    ds = load_dataset(paths.prepared)
    seed_everything(params.seed)
    with tracking.stage_run(
        experiment,
        "evaluate",
        {
            "seed": params.seed,
            **({"evaluate": exp.evaluate.model_dump(mode="json")} if exp.task == "regression" else {}),
        },
    ):
        by_bin = None
        if exp.task == "circle":
            summary = _circle(exp, ds, paths, experiment)
        else:
            summary, by_bin = _regression(exp, ds, paths, experiment)
            _log_by_bin_plot(by_bin, ds.label_name)
        tracking.log_metrics({f"{v}_{k}": x for v, m in summary["gan"].items() for k, x in m.items()})
        write_json(paths.summary_json, summary)
        write_json(paths.headline, headline(exp.task, summary, exp.dre_variant))
        write_text(paths.summary_md, markdown(experiment, ds.label_name, summary, by_bin))
        tracking.log_artifact(paths.summary_md)
    info(f"evaluate[{experiment}] -> {paths.summary_md}")
    return summary


def _circle(exp, ds, paths: Paths, experiment: str) -> dict[str, dict[str, dict[str, float]]]:
    angles, labels = torch.unique(ds.y_test), evaluation_labels(exp, ds)
    n = exp.data.eval_per_angle

    def metrics_of(x: torch.Tensor, y: torch.Tensor, keep: torch.Tensor) -> dict[str, float]:
        # fakes come grouped by label in the order of `labels`; rejection sampling may leave a label short
        return circle_metrics(
            x, angles[keep], radius=exp.data.radius, std=exp.data.std, counts=counts_by_label(y, labels[keep])
        )

    out: dict[str, dict[str, float]] = {}
    equal: dict[str, dict[str, float]] = {}
    for variant in exp.gan.variants:
        rows, rows_equal = gan_rows(exp, paths, experiment, variant, labels, n, metrics_of)
        out, equal = out | rows, equal | rows_equal
    return {"gan": out, "gan_equal_labels": equal}


def _eval_nets(paths: Paths) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """The evalnets stage's evaluation regressor and attribute classifier (None without an attribute)."""
    classifier = paths.eval_nets / "classifier.pt"
    if not (paths.eval_nets / "regressor.pt").exists():
        raise CheckpointError(
            f"{paths.eval_nets / 'regressor.pt'}: evaluation regressor not found (run the evalnets stage first)"
        )
    return load_classifier(paths.eval_nets / "regressor.pt"), load_classifier(
        classifier
    ) if classifier.exists() else None


class ByBin(NamedTuple):
    """Label Score per label bin: the bins' edges (label units) and, per GAN row, one value per bin."""

    edges: list[float]
    rows: dict[str, list[float]]


def _regression(exp, ds, paths: Paths, experiment: str) -> tuple[dict, ByBin]:
    p = exp.evaluate
    regressor, classifier = _eval_nets(paths)
    x_real, y_real = ds.all_splits("x"), ds.all_splits("y")
    lo, hi = float(ds.y_train.min()), float(ds.y_train.max())
    labels = evaluation_labels(exp, ds)
    reference = {"label_score": label_score(ds.denormalise(predict(regressor, ds.x_test).view(-1)), ds.y_test)[0]}

    def metrics_of(fake: torch.Tensor, y: torch.Tensor, _keep: torch.Tensor) -> dict[str, float]:
        y = ds.denormalise(y)
        pred = ds.denormalise(predict(regressor, fake).view(-1))
        score, score_std = label_score(pred, y)
        fids = binned_fid(regressor, x_real, y_real, fake, y, lo, hi, p.n_bins)
        row = {
            "label_score": score,
            "label_score_std": score_std,
            "fid_eval_regressor_features": fids["fid"],
            "intra_fid_eval_regressor_features": fids["intra_fid"],
            "label_score_by_bin": label_score_by_bin(pred, y, lo, hi, p.n_bins),
        }
        if classifier is not None:
            row["diversity"] = diversity(predict(classifier, fake).argmax(1), y)
        return row

    gan: dict[str, dict[str, float]] = {}
    equal: dict[str, dict[str, float]] = {}
    for variant in exp.gan.variants:
        rows, rows_equal = gan_rows(exp, paths, experiment, variant, labels, p.n_fake_per_label, metrics_of)
        gan, equal = gan | rows, equal | rows_equal
    by_bin = ByBin(
        [lo + (hi - lo) * i / p.n_bins for i in range(p.n_bins + 1)],
        {v: row.pop("label_score_by_bin") for v, row in gan.items()},
    )
    for row in equal.values():
        row.pop("label_score_by_bin", None)
    if classifier is not None:
        reference["diversity_real_test"] = diversity(predict(classifier, ds.x_test).argmax(1), ds.y_test)
    teacher = read_json(paths.metrics / "teacher.json")
    students = read_json(paths.metrics / "students.json")
    return {
        "gan": gan,
        "gan_equal_labels": equal,
        "reference": reference,
        "teacher": teacher,
        "students": students,
        "synthetic": _label_noise(ds, paths, regressor),
    }, by_bin


def _label_noise(ds, paths: Paths, regressor: torch.nn.Module) -> dict[str, float]:
    """How wrong the synthetic set's labels are, judged by the evaluation regressor (mean
    |regressor(x) - label| in label units over the kept fakes): the condition labels (cGAN-KD) and
    the teacher's adjusted ones (cGAN-KD with label adjustment). A student trained on fakes cannot
    beat the noise of their labels; compare it with the regressor's own error on real images."""
    x, y_cond, y_teacher = load_synthetic(paths, "y_cond", "y_teacher")
    if not len(y_cond):
        return {"n_kept": 0}
    pred = ds.denormalise(predict(regressor, x).view(-1))
    return {
        "n_kept": len(y_cond),
        "label_noise_cond": label_score(pred, ds.denormalise(y_cond))[0],
        "label_noise_adjusted": label_score(pred, ds.denormalise(y_teacher))[0],
    }


def _log_by_bin_plot(by_bin: ByBin, label_name: str) -> None:
    """Label Score against the label, one line per GAN row, as an MLflow artifact."""
    centres = [(a + b) / 2 for a, b in pairwise(by_bin.edges)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "label_score_by_label.png"
        save_curves(
            {v: (centres, scores) for v, scores in by_bin.rows.items()},
            path,
            f"Label Score by label ({label_name})",
            xlabel=label_name,
        )
        tracking.log_artifact(path)


def by_bin_table(by_bin: ByBin) -> list[str]:
    """Markdown rows: Label Score of each GAN row within each label bin (- for an empty bin)."""
    heads = [f"{a:.4g}-{b:.4g}" for a, b in pairwise(by_bin.edges)]
    return ["| GAN | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)] + [
        f"| {v} | " + " | ".join("-" if math.isnan(x) else f"{x:.3g}" for x in scores) + " |"
        for v, scores in by_bin.rows.items()
    ]


def synthetic_text(noise: dict[str, float], label_name: str) -> list[str]:
    """The synthetic set's label noise as a sentence (empty without kept fakes)."""
    if not noise.get("n_kept"):
        return []
    return [
        f"Label noise of the {noise['n_kept']} kept fakes, judged by the evaluation regressor (mean "
        "|regressor(x) - label|, "
        f"{label_name}): condition labels {noise['label_noise_cond']:.4g}, teacher-adjusted labels "
        f"{noise['label_noise_adjusted']:.4g}.",
        "",
    ]


def markdown(experiment: str, label_name: str, summary: dict, by_bin: ByBin | None = None) -> str:
    lines = [
        f"## {experiment}",
        "",
        *gan_table(summary["gan"]),
        "",
        "+dre / +cdre: the fakes drawn by DRE-F-SP+RS / cDRE-F-cSP+RS.",
        "",
    ]
    lines += equal_labels_text(summary["gan"], summary.get("gan_equal_labels", {}))
    if by_bin is not None:
        lines += [
            f"Label Score within each label bin ({label_name}; where G follows its label):",
            "",
            *by_bin_table(by_bin),
            "",
        ]
    if "reference" in summary:
        ref = summary["reference"]
        lines += [
            f"Label Score and MAE in {label_name}. FID / intra-FID use the evaluation regressor's features "
            "(not Inception), "
            f"so compare them within this experiment only. The evaluation regressor's own error on real test images: "
            f"{ref['label_score']:.4g}"
            + (
                f"; Diversity of real test images: {ref['diversity_real_test']:.4g}."
                if "diversity_real_test" in ref
                else "."
            ),
            "",
            f"Teacher test MAE: {summary['teacher']['test_mae']:.4g}",
            "",
            *synthetic_text(summary.get("synthetic", {}), label_name),
            *student_table(summary["students"], "mae", ".4g"),
            "",
        ]
    return "\n".join(lines)
