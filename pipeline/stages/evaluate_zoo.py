"""evaluate (ganzoo): every GAN variant measured on the teacher's features and classifier
-> metrics/<experiment>.json and .md, with the sample grids of the gan stage.

Per variant, n fakes per class (InfoGAN: per categorical code) from its EMA generator:
- FID, intra-FID and Inception Score on the teacher's features / classifier (not Inception),
  against the test images;
- the teacher's accuracy on fakes at their labels (the conditional kinds);
- InfoGAN (no labels): its codes are matched to the teacher's classes by the permutation that
  agrees most often (Hungarian); that agreement is its `code_accuracy`, and its intra-FID is taken
  at the matched classes. DCGAN has neither.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline import tracking
from pipeline.artifacts import (
    Paths,
    load_classifier,
    load_discriminator,
    load_generator,
    read_json,
    write_json,
    write_text,
)
from pipeline.data import load_dataset
from pipeline.gan.kinds import adversarial, get_kind
from pipeline.gan.train import sample
from pipeline.gan.variants import gan_images
from pipeline.metrics import fid, inception_fid, inception_score, intra_fid
from pipeline.params import Params
from pipeline.report import gan_table
from pipeline.ui import info
from pipeline.utils import batches, predict, seed_everything


def match_codes(codes: torch.Tensor, classes: torch.Tensor, k: int) -> tuple[torch.Tensor, float]:
    """The one-to-one map code -> class (a tensor indexed by code) that maximises agreement between
    codes and the classes predicted for the same fakes, and that agreement (a fraction)."""
    from scipy.optimize import linear_sum_assignment

    counts = torch.zeros(k, k, dtype=torch.long)
    counts.index_put_((codes, classes), torch.ones(len(codes), dtype=torch.long), accumulate=True)
    rows, cols = linear_sum_assignment(counts.numpy(), maximize=True)
    mapping = torch.empty(k, dtype=torch.long)
    mapping[torch.as_tensor(rows)] = torch.as_tensor(cols)
    return mapping, float(counts[rows, cols].sum()) / len(codes)


def variant_metrics(G, kind: str, teacher, ds, n: int, z_dim: int, inception_weights=None) -> dict[str, float]:
    """The metrics of one variant's generator G (see the module's docstring)."""
    y = torch.arange(ds.num_classes).repeat_interleave(n)
    x = sample(G, y, z_dim)
    probs = F.softmax(predict(teacher, x), 1)
    predicted = probs.argmax(1)
    row = {
        "fid_teacher_features": fid(teacher, ds.x_test, x),
        "is_teacher_classifier": inception_score(probs)[0],
    }
    labels = None
    if get_kind(kind).conditional:
        labels = y
        row["teacher_accuracy_on_fakes"] = float((predicted == y).float().mean())
    elif kind == "infogan":
        mapping, row["code_accuracy"] = match_codes(y, predicted, ds.num_classes)
        labels = mapping[y]
    if labels is not None:
        row["intra_fid_teacher_features"] = intra_fid(teacher, ds.x_test, ds.y_test, x, labels)[0]
    if inception_weights is not None:
        row["fid_inception"] = inception_fid(inception_weights, ds.x_test, x)
    return row


@torch.no_grad()
def d_gap(
    D, x_seen: torch.Tensor, y_seen: torch.Tensor, x_held: torch.Tensor, y_held: torch.Tensor, labelled: bool = True
) -> float:
    """The over-fitting measure of a data-limited GAN: D's mean adversarial logit on the real
    images it trained on minus on held-out real images (the test split), at their labels (a D
    that takes no label, `labelled` False, is handed zeros)."""

    def mean_logit(x: torch.Tensor, y: torch.Tensor) -> float:
        y = y if labelled else torch.zeros_like(y)
        out = torch.cat([adversarial(D(x[s], y[s])) for s in batches(len(x), 512)])
        return float(out.mean())

    return mean_logit(x_seen, y_seen) - mean_logit(x_held, y_held)


def variant_info(pv) -> dict:
    """What a variant is: kind, share of labels and of data kept, DiffAugment, KD-DLGAN's terms
    ("agkd+cgkd", "agkd", "cgkd" or "")."""
    kd = pv.kd_dlgan
    return {
        "kind": pv.kind,
        "label_fraction": pv.label_fraction,
        "data_fraction": pv.data_fraction,
        "diffaug": bool(pv.augment_shift or pv.augment_cutout),
        "kd_dlgan": "" if kd is None else "+".join(t for t in ("agkd", "cgkd") if getattr(kd, t)),
    }


def variant_text(v: dict) -> str:
    """variant_info for the table, e.g. "projection, 100% labels, 10% data, DiffAugment, AGKD+CGKD"."""
    parts = [v["kind"], "no labels" if get_kind(v["kind"]).labels == "none" else f"{v['label_fraction']:.0%} labels"]
    if v.get("data_fraction", 1) < 1:
        parts.append(f"{v['data_fraction']:.0%} data")
    if v.get("diffaug"):
        parts.append("DiffAugment")
    if v.get("kd_dlgan"):
        parts.append(v["kd_dlgan"].upper())
    return ", ".join(parts)


def summary_markdown(experiment: str, summary: dict) -> str:
    ref, variants = summary["reference"], summary["variants"]
    rows = {f"{v} ({variant_text(variants[v])})": m for v, m in summary["gan"].items()}
    return "\n".join(
        [
            f"## {experiment}",
            "",
            f"Teacher (the evaluation net) test accuracy: {summary['teacher']['test_accuracy']:.4f}",
            "",
            *gan_table(rows),
            "",
            "FID, intra-FID and IS use the teacher's features and classifier, not Inception: compare them within "
            "this experiment only (real training vs test images: FID "
            f"{ref['fid_teacher_features_real_train_vs_test']:.4g}, IS of the test images "
            f"{ref['is_teacher_classifier_real_test']:.4g}). teacher_accuracy_on_fakes: the "
            "teacher's accuracy at the labels the fakes were drawn at; code_accuracy (InfoGAN): agreement of its "
            "categorical code with the teacher's classes under the best one-to-one matching. Grids: "
            "gan_samples_<variant>.png (a row per class or code), gan_codes_<variant>.png (InfoGAN: a row per "
            "categorical code, the first continuous code from -2 to 2 along the row). d_gap: D's mean logit on "
            "the real images its GAN trained on minus on the test images (over-fitting of D).",
            "",
        ]
    )


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    p = exp.evaluate
    ds = load_dataset(paths.prepared)
    teacher = load_classifier(paths.teacher)
    gan, variants = {}, {}
    for variant in exp.gan.variants:
        pv = exp.gan.variant(variant)
        seed_everything(params.seed)
        G = load_generator(paths.generator(variant))
        gan[variant] = variant_metrics(G, pv.kind, teacher, ds, p.n_fake_per_class, pv.z_dim, p.inception_weights)
        x_seen, y_seen = gan_images(pv, ds.x_train, ds.y_train, params.seed)
        D = load_discriminator(paths.generator(variant))
        labelled = get_kind(pv.kind).labels != "none"
        gan[variant]["d_gap"] = d_gap(D, x_seen, y_seen, ds.x_test, ds.y_test, labelled=labelled)
        variants[variant] = variant_info(pv)
        info(f"evaluate[{experiment}]: {variant}: " + ", ".join(f"{k} {v:.4g}" for k, v in gan[variant].items()))
    reference = {
        "fid_teacher_features_real_train_vs_test": fid(teacher, ds.x_test, ds.x_train),
        "is_teacher_classifier_real_test": inception_score(F.softmax(predict(teacher, ds.x_test), 1))[0],
    }
    summary = {
        "gan": gan,
        "variants": variants,
        "reference": reference,
        "teacher": {"test_accuracy": read_json(paths.metrics / "teacher.json")["test_accuracy"]},
    }
    headline = {
        "task": "ganzoo",
        "gan_metric": "intra-FID (teacher features)",
        **{v: m["intra_fid_teacher_features"] for v, m in gan.items() if "intra_fid_teacher_features" in m},
    }
    with tracking.stage_run(experiment, "evaluate", {"seed": params.seed, "evaluate": p.model_dump(mode="json")}):
        tracking.log_metrics({**{f"{v}_{k}": x for v, m in gan.items() for k, x in m.items()}, **reference})
        write_json(paths.summary_json, summary)
        write_json(paths.headline, headline)
        write_text(paths.summary_md, summary_markdown(experiment, summary))
        tracking.log_artifact(paths.summary_md)
    info(f"evaluate[{experiment}] -> {paths.summary_md}")
    return summary
