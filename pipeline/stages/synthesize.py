"""synthesize: NFake fakes per class from G_ema, teacher filter, optional relabelling
-> data/<experiment>/synthetic/ (fakes.pt, kept_vs_dropped.png) and per-class kept fractions."""

from __future__ import annotations

import torch

from pipeline import tracking
from pipeline.utils import save_torch
from pipeline.data import load_dataset
from pipeline.distill.synthetic import build_synthetic, build_synthetic_regression, keep_mask, teacher_ce
from pipeline.gan.train import sample
from pipeline.params import Params
from pipeline.stages.common import CLASS_VARIANT, Paths, load_classifier, load_generator, save_grid, write_json
from pipeline.ui import info, progress_bar
from pipeline.utils import seed_everything

FAKES = "fakes.pt"


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    if exp.task == "regression":
        return _run_regression(exp, params.seed, experiment, paths)
    p = exp.synthesize
    ds = load_dataset(paths.prepared)
    teacher = load_classifier(paths.teacher)
    G = load_generator(paths.gan / f"{CLASS_VARIANT}.pt")
    seed_everything(params.seed)
    with tracking.stage_run(experiment, "synthesize", {"seed": params.seed, "synthesize": p.model_dump(mode="json")}):
        total = p.n_fake_per_class * ds.num_classes
        with progress_bar(f"synthesize[{experiment}]", total) as bar:
            syn = build_synthetic(
                G, teacher, num_classes=ds.num_classes, z_dim=exp.gan.z_dim, n_per_class=p.n_fake_per_class,
                n_burnin_per_class=p.n_burnin_per_class, rho=p.rho, relabel=p.relabel, batch_size=p.batch_size, progress=bar,
            )
        paths.synthetic.mkdir(parents=True, exist_ok=True)
        blob = {"x": syn.x.half(), "y": syn.y, "y_cond": syn.y_cond, "thresholds": syn.thresholds, "kept_fraction": syn.kept_fraction}
        save_torch(blob, paths.synthetic / FAKES)

        # A picture of what the filter does: per class, 8 kept fakes | white gap | 8 dropped ones.
        n = 8
        y_show = torch.arange(ds.num_classes).repeat_interleave(4 * n)
        x_show = sample(G, y_show, exp.gan.z_dim)
        keep = keep_mask(teacher_ce(teacher, x_show, y_show), y_show, syn.thresholds)
        rows = []
        for k in range(ds.num_classes):
            in_k = y_show == k
            kept, dropped = x_show[in_k & keep][:n], x_show[in_k & ~keep][:n]
            pad = lambda t: torch.cat([t, torch.full((n - len(t), *x_show.shape[1:]), -1.0)])  # noqa: E731
            rows += [pad(kept), torch.ones(1, *x_show.shape[1:]), pad(dropped)]
        save_grid(torch.cat(rows), paths.synthetic / "kept_vs_dropped.png", nrow=2 * n + 1)

        metrics = {
            "n_kept": len(syn.y),
            "kept_fraction": float(syn.kept_fraction.mean()),
            "relabelled_fraction": syn.relabelled_fraction,
            **{f"kept_fraction_class_{k}": float(v) for k, v in enumerate(syn.kept_fraction)},
        }
        tracking.log_metrics(metrics)
        tracking.log_artifact(paths.synthetic / "kept_vs_dropped.png")
    write_json(paths.metrics / "synthesize.json", metrics)
    info(f"synthesize[{experiment}]: kept {metrics['n_kept']} of {total} fakes ({metrics['kept_fraction']:.1%}), relabelled {syn.relabelled_fraction:.1%}")
    return metrics


def _run_regression(exp, seed: int, experiment: str, paths: Paths) -> dict:
    """Fakes at labels drawn uniformly over the training label range, filtered on |teacher(x) - y|."""
    p = exp.synthesize
    ds = load_dataset(paths.prepared)
    teacher = load_classifier(paths.teacher)
    G = load_generator(paths.gan / f"{p.gan_variant}.pt")
    u = ds.normalise(ds.y_train)
    seed_everything(seed)
    with tracking.stage_run(experiment, "synthesize", {"seed": seed, "synthesize": p.model_dump(mode="json")}):
        with progress_bar(f"synthesize[{experiment}]", p.n_fake) as bar:
            syn = build_synthetic_regression(
                G, teacher, z_dim=exp.gan.z_dim, n_fake=p.n_fake, n_burnin=p.n_burnin, rho=p.rho,
                label_range=(float(u.min()), float(u.max())), batch_size=p.batch_size, progress=bar,
            )
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
    write_json(paths.metrics / "synthesize.json", metrics)
    info(f"synthesize[{experiment}]: kept {metrics['n_kept']} of {p.n_fake} fakes ({metrics['kept_fraction']:.1%}); filter |teacher(x) - y| <= {metrics['threshold']:.3g} ({ds.label_name}); label adjustment moves labels by {metrics['adjustment_mae']:.3g} on average")
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
