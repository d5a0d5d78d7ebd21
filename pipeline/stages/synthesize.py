"""synthesize: fakes from the GAN (optionally through density-ratio subsampling), teacher filter,
relabelling -> data/<experiment>/synthetic/ (fakes.pt, pictures, subsampling.json).

subsampling: none draws G's plain samples; dre / cdre draw them by rejection sampling with the
dre stage's DRE-F-SP / cDRE-F-cSP nets (ALGORITHMS.md section 2), before the teacher filter.
"""

from __future__ import annotations

import torch

from pipeline import tracking
from pipeline.artifacts import (
    CLASS_VARIANT,
    Paths,
    load_classifier,
    load_generator,
    load_subsampler,
    save_synthetic,
    write_json,
)
from pipeline.data import load_dataset
from pipeline.distill.synthetic import keep_mask, synthetic_set, teacher_ce
from pipeline.figures import save_grid, save_split_grid
from pipeline.params import Params
from pipeline.subsample.sampling import RSStats
from pipeline.subsample.subsampler import SHOW_LABELS, Subsampler, accepted_vs_rejected, subsampling_report
from pipeline.ui import info, progress_bar


def _bar(experiment: str):
    return lambda what, total: progress_bar(f"synthesize[{experiment}] {what}", total)


def _log_subsampling(
    paths: Paths, G, z_dim: int, sub: Subsampler | None, stats: RSStats | None, method: str, show: torch.Tensor
) -> dict:
    """The filtered set and its metadata as DVC outputs (in data/<exp>/synthetic) and MLflow artifacts."""
    report = subsampling_report(stats, method)
    write_json(paths.synthetic / "subsampling.json", report)
    tracking.log_artifact(paths.fakes, "synthetic")
    tracking.log_artifact(paths.synthetic / "subsampling.json", "synthetic")
    if sub is not None and stats is not None:
        save_split_grid(accepted_vs_rejected(G, z_dim, sub, stats, show), paths.synthetic / "accepted_vs_rejected.png")
        tracking.log_artifact(paths.synthetic / "accepted_vs_rejected.png", "synthetic")
        tracking.log_metrics({f"subsampling_{k}": float(v) for k, v in report.items() if isinstance(v, (int, float))})
    return {k: v for k, v in report.items() if k != "per_label"}


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    if exp.task == "regression":
        return _run_regression(exp, params.seed, experiment, paths)
    p = exp.synthesize
    ds = load_dataset(paths.prepared)
    teacher = load_classifier(paths.teacher)
    G = load_generator(paths.generator(CLASS_VARIANT))
    sub = load_subsampler(paths, p.subsampling)
    with tracking.stage_run(experiment, "synthesize", {"seed": params.seed, "synthesize": p.model_dump(mode="json")}):
        syn, x, y, stats, classes = synthetic_set(exp, ds, teacher, G, sub, params.seed, _bar(experiment))
        paths.synthetic.mkdir(parents=True, exist_ok=True)
        save_synthetic(
            paths,
            {
                "x": syn.x,
                "y": syn.y,
                "y_cond": syn.y_cond,
                "thresholds": syn.thresholds,
                "kept_fraction": syn.kept_fraction,
            },
        )

        # what the teacher filter does: per class, 8 kept fakes | gap | 8 dropped ones (of the drawn fakes)
        ce_keep = keep_mask(teacher_ce(teacher, x, y), y, syn.thresholds)
        save_split_grid(
            [(x[(y == k) & ce_keep][:8], x[(y == k) & ~ce_keep][:8]) for k in classes],
            paths.synthetic / "kept_vs_dropped.png",
        )
        metrics = {
            "n_kept": len(syn.y),
            "kept_fraction": float(syn.kept_fraction.mean()),
            "relabelled_fraction": syn.relabelled_fraction,
            **{f"kept_fraction_class_{k}": float(v) for k, v in enumerate(syn.kept_fraction)},
        }
        tracking.log_metrics(metrics)
        tracking.log_artifact(paths.synthetic / "kept_vs_dropped.png")
        metrics["subsampling"] = _log_subsampling(
            paths, G, exp.gan.z_dim, sub, stats, p.subsampling, classes[:SHOW_LABELS]
        )
    write_json(paths.metrics / "synthesize.json", metrics)
    info(
        f"synthesize[{experiment}]: kept {metrics['n_kept']} of {len(y)} fakes "
        f"({metrics['kept_fraction']:.1%}), relabelled {syn.relabelled_fraction:.1%}" + _rs_text(metrics["subsampling"])
    )
    return metrics


def _rs_text(report: dict) -> str:
    return (
        f"; {report['method']} acceptance rate {report['acceptance_rate']:.1%}" if "acceptance_rate" in report else ""
    )


def _run_regression(exp, seed: int, experiment: str, paths: Paths) -> dict:
    """Fakes at labels drawn uniformly over the training label range, filtered on |teacher(x) - y|."""
    p = exp.synthesize
    ds = load_dataset(paths.prepared)
    teacher = load_classifier(paths.teacher)
    G = load_generator(paths.generator(p.gan_variant))
    sub = load_subsampler(paths, p.subsampling)
    with tracking.stage_run(experiment, "synthesize", {"seed": seed, "synthesize": p.model_dump(mode="json")}):
        syn, x, y, stats, labels = synthetic_set(exp, ds, teacher, G, sub, seed, _bar(experiment))
        paths.synthetic.mkdir(parents=True, exist_ok=True)
        save_synthetic(
            paths, {"x": syn.x, "y_cond": syn.y_cond, "y_teacher": syn.y_teacher, "threshold": syn.threshold}
        )
        order = torch.argsort(syn.y_cond)
        show = order[torch.linspace(0, len(order) - 1, 64).long()] if len(order) else order
        save_grid(syn.x[show], paths.synthetic / "kept_samples.png", nrow=8)
        metrics = {
            "n_kept": len(syn.y_cond),
            "kept_fraction": syn.kept_fraction,
            "threshold": float(ds.denormalise(torch.tensor(syn.threshold)) - ds.denormalise(torch.tensor(0.0))),
            "adjustment_mae": float((ds.denormalise(syn.y_teacher) - ds.denormalise(syn.y_cond)).abs().mean())
            if len(syn.y_cond)
            else 0.0,
        }
        tracking.log_metrics(metrics)
        tracking.log_artifact(paths.synthetic / "kept_samples.png")
        show_labels = torch.sort(labels).values[
            torch.linspace(0, len(labels) - 1, min(SHOW_LABELS, len(labels))).long()
        ]
        metrics["subsampling"] = _log_subsampling(paths, G, exp.gan.z_dim, sub, stats, p.subsampling, show_labels)
    write_json(paths.metrics / "synthesize.json", metrics)
    info(
        f"synthesize[{experiment}]: kept {metrics['n_kept']} of {len(y)} fakes "
        f"({metrics['kept_fraction']:.1%}); filter |teacher(x) - y| <= {metrics['threshold']:.3g} "
        f"({ds.label_name}); label adjustment moves labels by {metrics['adjustment_mae']:.3g} on average"
        + _rs_text(metrics["subsampling"])
    )
    return metrics
