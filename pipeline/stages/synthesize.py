"""synthesize: fakes from the GAN (optionally through density-ratio subsampling), teacher filter,
relabelling -> data/<experiment>/synthetic/ (fakes.pt, pictures, subsampling.json).

subsampling: none draws G's plain samples; dre / cdre draw them by rejection sampling with the
dre stage's DRE-F-SP / cDRE-F-cSP nets (ALGORITHMS.md section 2), before the teacher filter.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from pipeline import tracking
from pipeline.data import load_dataset
from pipeline.distill.synthetic import RegressionSyntheticSet, SyntheticSet, build_synthetic, build_synthetic_regression, keep_mask, teacher_ce
from pipeline.params import Params
from pipeline.stages.common import CLASS_VARIANT, Paths, load_classifier, load_generator, load_subsampler, save_grid, save_split_grid, write_json
from pipeline.subsample.sampling import RSStats
from pipeline.subsample.subsampler import SHOW_LABELS, Subsampler, accepted_vs_rejected, draw, subsampling_report
from pipeline.ui import info, progress_bar
from pipeline.utils import save_torch, seed_everything

FAKES = "fakes.pt"


def _draw(name: str, G, z_dim: int, labels: torch.Tensor, n: int, sub: Subsampler | None, dre) -> tuple[torch.Tensor, torch.Tensor, RSStats | None]:
    with progress_bar(name, len(labels) * n) as bar:
        return draw(G, z_dim, labels, n, sub, burnin=dre.burnin, batch_size=dre.batch_size_rs, progress=bar)


def _log_subsampling(paths: Paths, G, z_dim: int, sub: Subsampler | None, stats: RSStats | None, method: str, show: torch.Tensor) -> dict:
    """The filtered set and its metadata as DVC outputs (in data/<exp>/synthetic) and MLflow artifacts."""
    report = subsampling_report(stats, method)
    write_json(paths.synthetic / "subsampling.json", report)
    tracking.log_artifact(paths.synthetic / FAKES, "synthetic")
    tracking.log_artifact(paths.synthetic / "subsampling.json", "synthetic")
    if sub is not None and stats is not None:
        save_split_grid(accepted_vs_rejected(G, z_dim, sub, stats, show), paths.synthetic / "accepted_vs_rejected.png")
        tracking.log_artifact(paths.synthetic / "accepted_vs_rejected.png", "synthetic")
        tracking.log_metrics({f"subsampling_{k}": float(v) for k, v in report.items() if isinstance(v, (int, float))})
    return {k: v for k, v in report.items() if k != "per_label"}


class Drawn(NamedTuple):
    """What synthesize draws: the processed set, the fakes before the teacher filter (x, y), the
    rejection-sampling statistics (None without subsampling) and the labels drawn at."""

    syn: SyntheticSet | RegressionSyntheticSet
    x: torch.Tensor
    y: torch.Tensor
    stats: RSStats | None
    labels: torch.Tensor


def synthetic_set(exp, ds, teacher, G, sub: Subsampler | None, seed: int, name: str) -> Drawn:
    """Draw the burn-in set and the fakes (through `sub` when given), then filter (and relabel)
    them with the teacher, by `exp.synthesize`. The stage and the n-fake study share it."""
    p = exp.synthesize
    seed_everything(seed)
    if exp.task == "classification":
        labels = torch.arange(ds.num_classes)
        burn = _draw(f"{name} burn-in ({p.subsampling})", G, exp.gan.z_dim, labels, p.n_burnin_per_class, sub, exp.dre)
        x, y, stats = _draw(f"{name} fakes ({p.subsampling})", G, exp.gan.z_dim, labels, p.n_fake_per_class, sub, exp.dre)
        return Drawn(build_synthetic(teacher, burn[:2], (x, y), num_classes=ds.num_classes, rho=p.rho, relabel=p.relabel), x, y, stats, labels)
    u = ds.normalise(ds.y_train)
    lo, hi = float(u.min()), float(u.max())
    burn_labels = lo + (hi - lo) * torch.rand(max(1, p.n_burnin // p.n_per_label))
    labels = lo + (hi - lo) * torch.rand(max(1, p.n_fake // p.n_per_label))
    burn = _draw(f"{name} burn-in ({p.subsampling})", G, exp.gan.z_dim, burn_labels, p.n_per_label, sub, exp.dre)
    x, y, stats = _draw(f"{name} fakes ({p.subsampling})", G, exp.gan.z_dim, labels, p.n_per_label, sub, exp.dre)
    return Drawn(build_synthetic_regression(teacher, burn[:2], (x, y), rho=p.rho), x, y, stats, labels)


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    if exp.task == "regression":
        return _run_regression(exp, params.seed, experiment, paths)
    p = exp.synthesize
    ds = load_dataset(paths.prepared)
    teacher = load_classifier(paths.teacher)
    G = load_generator(paths.gan / f"{CLASS_VARIANT}.pt")
    sub = load_subsampler(paths, p.subsampling)
    with tracking.stage_run(experiment, "synthesize", {"seed": params.seed, "synthesize": p.model_dump(mode="json")}):
        syn, x, y, stats, classes = synthetic_set(exp, ds, teacher, G, sub, params.seed, f"synthesize[{experiment}]")
        paths.synthetic.mkdir(parents=True, exist_ok=True)
        blob = {"x": syn.x.half(), "y": syn.y, "y_cond": syn.y_cond, "thresholds": syn.thresholds, "kept_fraction": syn.kept_fraction}
        save_torch(blob, paths.synthetic / FAKES)

        # what the teacher filter does: per class, 8 kept fakes | gap | 8 dropped ones (of the drawn fakes)
        ce_keep = keep_mask(teacher_ce(teacher, x, y), y, syn.thresholds)
        save_split_grid([(x[(y == k) & ce_keep][:8], x[(y == k) & ~ce_keep][:8]) for k in classes], paths.synthetic / "kept_vs_dropped.png")
        metrics = {
            "n_kept": len(syn.y),
            "kept_fraction": float(syn.kept_fraction.mean()),
            "relabelled_fraction": syn.relabelled_fraction,
            **{f"kept_fraction_class_{k}": float(v) for k, v in enumerate(syn.kept_fraction)},
        }
        tracking.log_metrics(metrics)
        tracking.log_artifact(paths.synthetic / "kept_vs_dropped.png")
        metrics["subsampling"] = _log_subsampling(paths, G, exp.gan.z_dim, sub, stats, p.subsampling, classes[:SHOW_LABELS])
    write_json(paths.metrics / "synthesize.json", metrics)
    info(f"synthesize[{experiment}]: kept {metrics['n_kept']} of {len(y)} fakes ({metrics['kept_fraction']:.1%}), relabelled {syn.relabelled_fraction:.1%}" + _rs_text(metrics["subsampling"]))
    return metrics


def _rs_text(report: dict) -> str:
    return f"; {report['method']} acceptance rate {report['acceptance_rate']:.1%}" if "acceptance_rate" in report else ""


def _run_regression(exp, seed: int, experiment: str, paths: Paths) -> dict:
    """Fakes at labels drawn uniformly over the training label range, filtered on |teacher(x) - y|."""
    p = exp.synthesize
    ds = load_dataset(paths.prepared)
    teacher = load_classifier(paths.teacher)
    G = load_generator(paths.gan / f"{p.gan_variant}.pt")
    sub = load_subsampler(paths, p.subsampling)
    with tracking.stage_run(experiment, "synthesize", {"seed": seed, "synthesize": p.model_dump(mode="json")}):
        syn, x, y, stats, labels = synthetic_set(exp, ds, teacher, G, sub, seed, f"synthesize[{experiment}]")
        paths.synthetic.mkdir(parents=True, exist_ok=True)
        blob = {"x": syn.x.half(), "y_cond": syn.y_cond, "y_teacher": syn.y_teacher, "threshold": syn.threshold}
        save_torch(blob, paths.synthetic / FAKES)
        order = torch.argsort(syn.y_cond)
        show = order[torch.linspace(0, len(order) - 1, 64).long()] if len(order) else order
        save_grid(syn.x[show], paths.synthetic / "kept_samples.png", nrow=8)
        metrics = {
            "n_kept": len(syn.y_cond),
            "kept_fraction": syn.kept_fraction,
            "threshold": float(ds.denormalise(torch.tensor(syn.threshold)) - ds.denormalise(torch.tensor(0.0))),
            "adjustment_mae": float((ds.denormalise(syn.y_teacher) - ds.denormalise(syn.y_cond)).abs().mean()) if len(syn.y_cond) else 0.0,
        }
        tracking.log_metrics(metrics)
        tracking.log_artifact(paths.synthetic / "kept_samples.png")
        show_labels = torch.sort(labels).values[torch.linspace(0, len(labels) - 1, min(SHOW_LABELS, len(labels))).long()]
        metrics["subsampling"] = _log_subsampling(paths, G, exp.gan.z_dim, sub, stats, p.subsampling, show_labels)
    write_json(paths.metrics / "synthesize.json", metrics)
    info(f"synthesize[{experiment}]: kept {metrics['n_kept']} of {len(y)} fakes ({metrics['kept_fraction']:.1%}); filter |teacher(x) - y| <= {metrics['threshold']:.3g} ({ds.label_name}); label adjustment moves labels by {metrics['adjustment_mae']:.3g} on average" + _rs_text(metrics["subsampling"]))
    return metrics


def load_synthetic(paths: Paths, label: str = "y") -> tuple[torch.Tensor, torch.Tensor]:
    """(fakes, labels) of the synthetic set; `label` picks "y" (classification), or "y_cond" /
    "y_teacher" (regression: the condition, or the teacher's adjusted label)."""
    from pipeline.errors import DataError

    path = paths.synthetic / FAKES
    try:
        blob = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: synthetic set not found (run the synthesize stage first)") from None
    except Exception as err:
        raise DataError(f"{path}: unreadable synthetic set ({type(err).__name__})") from None
    return blob["x"].float(), blob[label]
