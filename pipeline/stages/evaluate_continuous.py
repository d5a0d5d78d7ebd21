"""evaluate for continuous labels: every GAN variant against the others, and the students.

circle: % high-quality samples, % recovered modes and the 2-Wasserstein distance at the unseen
evaluation angles. Image regression (chairs, RC-49, ...): an evaluation regressor and an
attribute classifier are trained on every real image of the prepared splits (as the CcGAN paper
does); Label Score = mean |regressor(fake) - y| in label units; FID and intra-FID over label
bins on the regressor's features (named *_eval_regressor_features); Diversity = entropy of the
predicted attribute (e.g. chair model) at each label, averaged. Then the students' MAE.
"""

from __future__ import annotations

import json

import torch

from pipeline import tracking
from pipeline.data import load_dataset
from pipeline.distill.train import train_classifier
from pipeline.gan.train import sample
from pipeline.metrics import binned_fid, circle_metrics, diversity, label_score
from pipeline.nets import build_classifier
from pipeline.params import Params
from pipeline.stages.common import Paths, load_generator, write_json, write_text
from pipeline.ui import info, progress_bar
from pipeline.utils import predict, seed_everything

STUDENT_NAMES = {"real_only": "real only", "cgan_kd": "cGAN-KD", "cgan_kd_adjusted": "cGAN-KD (label adjustment)"}


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    ds = load_dataset(paths.prepared)
    seed_everything(params.seed)
    with tracking.stage_run(experiment, "evaluate", {"seed": params.seed, **({"evaluate": exp.evaluate.model_dump(mode="json")} if exp.task == "regression" else {})}):
        if exp.task == "circle":
            summary = {"gan": _circle(exp, ds, paths)}
        else:
            summary = _regression(exp, ds, paths, experiment)
        tracking.log_metrics({f"{v}_{k}": x for v, m in summary["gan"].items() for k, x in m.items()})
        write_json(paths.summary_json, summary)
        write_text(paths.summary_md, markdown(experiment, ds.label_name, summary))
        tracking.log_artifact(paths.summary_md)
    info(f"evaluate[{experiment}] -> {paths.summary_md}")
    return summary


def _circle(exp, ds, paths: Paths) -> dict[str, dict[str, float]]:
    angles = torch.unique(ds.y_test)
    n = exp.data.eval_per_angle
    out = {}
    for variant in exp.gan.variants:
        G = load_generator(paths.gan / f"{variant}.pt")
        fake = sample(G, ds.normalise(angles).repeat_interleave(n), exp.gan.z_dim).view(len(angles), n, -1)
        out[variant] = circle_metrics(fake, angles, radius=exp.data.radius, std=exp.data.std)
    return out


def _eval_nets(p, ds, experiment: str) -> tuple[torch.nn.Module, torch.nn.Module | None, torch.Tensor, torch.Tensor]:
    """The evaluation regressor (and attribute classifier) on every real image; returns them and those images."""
    x = torch.cat([ds.x_train, ds.x_val, ds.x_test])
    y = torch.cat([ds.y_train, ds.y_val, ds.y_test])
    attr = torch.cat([ds.attr_train, ds.attr_val, ds.attr_test])
    regressor = build_classifier(p.net, ds.channels, 1, p.width)
    with progress_bar(f"evaluate[{experiment}] evaluation regressor", p.steps) as bar:
        train_classifier(regressor, x, ds.normalise(y), steps=p.steps, batch_size=p.batch_size, lr=p.lr, loss="mse", progress=bar)
    classifier = None
    if ds.num_attr > 1 and bool((attr >= 0).all()):
        classifier = build_classifier(p.net, ds.channels, ds.num_attr, p.width)
        with progress_bar(f"evaluate[{experiment}] attribute classifier", p.steps) as bar:
            train_classifier(classifier, x, attr, steps=p.steps, batch_size=p.batch_size, lr=p.lr, loss="ce", progress=bar)
    return regressor, classifier, x, y


def _regression(exp, ds, paths: Paths, experiment: str) -> dict:
    p = exp.evaluate
    regressor, classifier, x_real, y_real = _eval_nets(p, ds, experiment)
    lo, hi = float(ds.y_train.min()), float(ds.y_train.max())
    labels = torch.linspace(lo, hi, p.n_labels).repeat_interleave(p.n_fake_per_label)
    gan: dict[str, dict[str, float]] = {}
    reference = {"label_score": label_score(ds.denormalise(predict(regressor, ds.x_test).view(-1)), ds.y_test)[0]}
    for variant in exp.gan.variants:
        G = load_generator(paths.gan / f"{variant}.pt")
        fake = sample(G, ds.normalise(labels), exp.gan.z_dim)
        score, score_std = label_score(ds.denormalise(predict(regressor, fake).view(-1)), labels)
        fids = binned_fid(regressor, x_real, y_real, fake, labels, lo, hi, p.n_bins)
        gan[variant] = {
            "label_score": score,
            "label_score_std": score_std,
            "fid_eval_regressor_features": fids["fid"],
            "intra_fid_eval_regressor_features": fids["intra_fid"],
        }
        if classifier is not None:
            gan[variant]["diversity"] = diversity(predict(classifier, fake).argmax(1), labels)
    if classifier is not None:
        reference["diversity_real_test"] = diversity(predict(classifier, ds.x_test).argmax(1), ds.y_test)
    teacher = json.loads((paths.metrics / "teacher.json").read_text())
    students = json.loads((paths.metrics / "students.json").read_text())
    return {"gan": gan, "reference": reference, "teacher": teacher, "students": students}


def markdown(experiment: str, label_name: str, summary: dict) -> str:
    gan = summary["gan"]
    keys = list(next(iter(gan.values())))
    lines = [f"## {experiment}", "", "| GAN variant | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    lines += [f"| {v} | " + " | ".join(f"{m[k]:.4g}" for k in keys) + " |" for v, m in gan.items()]
    lines.append("")
    if "reference" in summary:
        ref = summary["reference"]
        lines += [
            f"Label Score and MAE in {label_name}. FID / intra-FID use the evaluation regressor's features (not Inception), "
            f"so compare them within this experiment only. The evaluation regressor's own error on real test images: "
            f"{ref['label_score']:.4g}" + (f"; Diversity of real test images: {ref['diversity_real_test']:.4g}." if "diversity_real_test" in ref else "."),
            "",
            f"Teacher test MAE: {summary['teacher']['test_mae']:.4g}",
            "",
            "| student | training images | validation MAE | test MAE |",
            "|---|---|---|---|",
            *[
                f"| {STUDENT_NAMES.get(v, v)} | {r['n_train']} | {r.get('val_mae', float('nan')):.4g} | {r['test_mae']:.4g} |"
                for v, r in sorted(summary["students"].items(), key=lambda item: list(STUDENT_NAMES).index(item[0]))
            ],
            "",
        ]
    return "\n".join(lines)
