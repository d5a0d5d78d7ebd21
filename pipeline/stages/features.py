"""features: DRE's feature extractor, trained on the real training data ->
models/<experiment>/features.pt.

Class labels: a classifier of its own (h = its penultimate layer), or the teacher itself when
features.net is "teacher" (then DRE works in the teacher's space; evaluation never does).
Continuous labels: a sparse autoencoder with a regression head on its code (reconstruction MSE +
sparsity x mean(h) + label MSE).
"""

from __future__ import annotations

import torch

from pipeline import tracking
from pipeline.artifacts import Paths, classifier_arch, load_classifier, save_features, write_json
from pipeline.data import load_dataset
from pipeline.distill.fit import accuracy, best_step, fit, mae
from pipeline.params import Params
from pipeline.subsample.autoencoder import SparseAutoencoder
from pipeline.subsample.features import train_autoencoder
from pipeline.ui import info, progress_bar
from pipeline.utils import seed_everything

FEATURES_SEED = 1  # offset of the feature classifier's seed: even at the teacher's settings it is another net


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    p = exp.features
    ds = load_dataset(paths.prepared)
    seed_everything(params.seed)
    x_eval, y_eval = (ds.x_val, ds.y_val) if len(ds.y_val) else (ds.x_test, ds.y_test)
    split = "val" if len(ds.y_val) else "test"
    with tracking.stage_run(experiment, "features", {"seed": params.seed, "features": p.model_dump(mode="json")}):
        if exp.task == "classification":
            if p.net == "teacher":
                model, arch = load_classifier(paths.teacher), classifier_arch(paths.teacher)
                history = []
            else:
                arch = {"net": p.net, "in_channels": ds.channels, "num_classes": ds.num_classes, "width": p.width}
                with progress_bar(f"features[{experiment}] classifier", p.steps) as bar:
                    model, history = fit(p, exp.task, ds, seed=params.seed + FEATURES_SEED, progress=bar)
                tracking.log_history(history, "train_")
            metrics = {
                "source": p.net,
                f"{split}_accuracy": accuracy(model, x_eval, y_eval),
                "feature_dim": model.feature_dim,
                **best_step(history),
            }
            kind = "classifier"
        else:
            arch = {"data_shape": list(ds.x_train.shape[1:]), "code_dim": p.code_dim, "width": p.width}
            model = SparseAutoencoder(tuple(arch["data_shape"]), p.code_dim, p.width)
            with progress_bar(f"features[{experiment}] sparse autoencoder", p.steps) as bar:
                history = train_autoencoder(
                    model,
                    ds.x_train,
                    ds.normalise(ds.y_train),
                    steps=p.steps,
                    batch_size=p.batch_size,
                    lr=p.lr,
                    sparsity=p.sparsity,
                    progress=bar,
                )
            tracking.log_history(history, "train_")
            with torch.no_grad():
                x_hat, h, _ = model.reconstruct(x_eval)
            metrics = {
                f"{split}_reconstruction_mse": float(((x_hat - x_eval) ** 2).mean()),
                f"{split}_label_mae": mae(model, ds, x_eval, y_eval),
                "code_active_fraction": float((h > 0).float().mean()),
                "feature_dim": p.code_dim,
            }
            kind = "autoencoder"
        tracking.log_metrics({k: v for k, v in metrics.items() if isinstance(v, float)})
    save_features(model, paths.features, kind=kind, arch=arch)
    write_json(paths.metrics / "features.json", metrics)
    info(
        f"features[{experiment}]: {kind} "
        + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))
    )
    return metrics
