"""`cgankd subsample`: density-ratio subsampling of any saved generator, outside the DVC pipeline.

For a user's own generator checkpoint (a supported architecture, saved like the gan stage's:
`arch` and `state.G_ema`): the ratio net of the chosen method is trained on that generator's
fakes and the experiment's real training data, in the experiment's feature space (the features
stage's output, and for continuous labels the embed stage's y2h), then fakes are drawn by
rejection sampling at the experiment's evaluation labels. Writes <out>.pt (x, y in label units,
psi), <out>.json (acceptance rates, ratio statistics) and, for images, <out>.png (accepted |
rejected fakes for a few labels). Nothing is written unless everything succeeds.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.artifacts import Paths, load_features, load_generator, load_y2h, write_json
from pipeline.data import load_dataset
from pipeline.errors import ParamsError
from pipeline.figures import save_split_grid
from pipeline.gan.train import sample
from pipeline.metrics.variants import evaluation_labels
from pipeline.params import Params
from pipeline.subsample.fit import fit_ratio, label_window, ratio_data
from pipeline.subsample.subsampler import SHOW_LABELS, Subsampler, accepted_vs_rejected, draw, subsampling_report
from pipeline.ui import info, progress_bar
from pipeline.utils import save_torch, seed_everything


def run(
    params: Params, experiment: str, paths: Paths, *, generator: Path, method: str, n_per_label: int, out: Path
) -> dict:
    exp = params.experiment(experiment)
    if not hasattr(exp, "dre"):
        raise ParamsError(
            f"experiments.{experiment}: a {exp.task} experiment has no density-ratio nets to subsample with"
        )
    p = exp.dre
    continuous = exp.task != "classification"
    ds = load_dataset(paths.prepared)
    phi = load_features(paths.features)
    G = load_generator(generator)
    label = ds.normalise if continuous else (lambda y: y)
    held = (ds.x_val, ds.y_val) if len(ds.y_val) else (ds.x_test, ds.y_test)
    seed_everything(params.seed)
    zeta = label_window(label(ds.y_train), p.zeta_factor, continuous)
    data = ratio_data(
        phi,
        lambda y: sample(G, y, exp.gan.z_dim, p.batch_size_rs),
        (ds.x_train, label(ds.y_train)),
        (held[0], label(held[1])),
        p,
        zeta,
    )
    with progress_bar(f"subsample[{experiment}] {method} ratio", p.steps) as bar:
        fitted = fit_ratio(
            data,
            method,
            p,
            num_classes=0 if continuous else ds.num_classes,
            y2h=load_y2h(paths) if continuous and method == "cdre" else None,
            progress=bar,
        )
    sub = Subsampler(phi, fitted.net, zeta)
    labels = evaluation_labels(exp, ds)
    with progress_bar(f"subsample[{experiment}] {method}+RS", len(labels) * n_per_label) as bar:
        x, y, stats = draw(
            G, exp.gan.z_dim, labels, n_per_label, sub, burnin=p.burnin, batch_size=p.batch_size_rs, progress=bar
        )
    psi, _ = sub.score(x, y)
    report = {
        "generator": str(generator),
        "experiment": experiment,
        **subsampling_report(stats, method),
        "ratio": fitted.stats,
    }
    y_out = ds.denormalise(y) if continuous else y
    save_torch({"x": x, "y": y_out, "psi": psi}, out.with_suffix(".pt"))
    write_json(out.with_suffix(".json"), report)
    if x.dim() == 4:  # images
        show = labels[torch.linspace(0, len(labels) - 1, min(SHOW_LABELS, len(labels))).long()]
        save_split_grid(accepted_vs_rejected(G, exp.gan.z_dim, sub, stats, show), out.with_suffix(".png"))
    info(
        f"subsample[{experiment}]: {len(x)} fakes at {len(labels)} labels, acceptance rate "
        f"{report['acceptance_rate']:.1%} -> {out.with_suffix('.pt')}"
    )
    return report
