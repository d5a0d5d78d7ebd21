"""evalnets: the evaluation nets of a KD experiment, trained once on every real image.

The evaluate stage measures GANs with them. Image regression: an evaluation regressor (Label
Score, and the features of FID / intra-FID) and, where the data set has an attribute such as the
chair model, an attribute classifier (Diversity). Classification: an evaluation classifier (the
features of FID / intra-FID and the class probabilities of IS), neither the teacher nor DRE's
feature net, so that subsampled fakes are not scored in the space their ratio was fitted in. As
the CcGAN paper does, they are trained on all real images of the prepared splits (they judge
fakes, never a student). Kept as DVC outputs, they are trained once: every evaluate rerun judges
with the very same nets, so its metrics stay comparable across GAN changes, also on hardware
whose training is not bit-reproducible.
"""

from __future__ import annotations

import torch

from pipeline import tracking
from pipeline.artifacts import Paths, save_classifier, write_json
from pipeline.data import load_dataset
from pipeline.distill.fit import accuracy, mae
from pipeline.distill.train import train_classifier
from pipeline.nets import build_classifier
from pipeline.params import Params
from pipeline.ui import info, progress_bar
from pipeline.utils import seed_everything


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    if exp.task == "translation":
        from pipeline.stages import translation

        return translation.evalnets(params, experiment, paths)
    if exp.task == "classification":
        return _classification(params, experiment, paths)
    p = exp.evaluate
    ds = load_dataset(paths.prepared)
    x, y, attr = ds.all_splits("x"), ds.all_splits("y"), ds.all_splits("attr")
    with_classifier = ds.num_attr > 1 and bool((attr >= 0).all())
    seed_everything(params.seed)
    nets = {k: getattr(p, k) for k in ("net", "width", "steps", "batch_size", "lr")}
    with tracking.stage_run(experiment, "evalnets", {"seed": params.seed, "evalnets": nets}):
        regressor = build_classifier(p.net, ds.channels, 1, p.width)
        with progress_bar(f"evalnets[{experiment}] evaluation regressor", p.steps) as bar:
            train_classifier(
                regressor, x, ds.normalise(y), steps=p.steps, batch_size=p.batch_size, lr=p.lr, loss="mse", progress=bar
            )
        # trained on every image, so these are fits, not generalisation: how closely the nets can judge at all
        metrics = {"regressor_train_mae": mae(regressor, ds, x, y)}
        if with_classifier:
            classifier = build_classifier(p.net, ds.channels, ds.num_attr, p.width)
            with progress_bar(f"evalnets[{experiment}] attribute classifier", p.steps) as bar:
                train_classifier(
                    classifier, x, attr, steps=p.steps, batch_size=p.batch_size, lr=p.lr, loss="ce", progress=bar
                )
            metrics["classifier_train_accuracy"] = accuracy(classifier, x, attr)
        tracking.log_metrics(metrics)
    arch = {"net": p.net, "in_channels": ds.channels, "width": p.width}
    save_classifier(regressor, paths.eval_nets / "regressor.pt", num_classes=1, **arch)
    if with_classifier:
        save_classifier(classifier, paths.eval_nets / "classifier.pt", num_classes=ds.num_attr, **arch)
    else:
        (paths.eval_nets / "classifier.pt").unlink(missing_ok=True)  # left from data that had the attribute
    write_json(paths.metrics / "evalnets.json", metrics)
    info(
        f"evalnets[{experiment}]: regressor MAE {metrics['regressor_train_mae']:.4g} {ds.label_name} on the "
        "real images it was trained on"
        + (f", attribute classifier accuracy {metrics['classifier_train_accuracy']:.4g}" if with_classifier else "")
    )
    return metrics


def _classification(params: Params, experiment: str, paths: Paths) -> dict:
    p = params.experiment(experiment).evaluate
    ds = load_dataset(paths.prepared)
    x = torch.cat([ds.x_train, ds.x_val, ds.x_test])
    y = torch.cat([ds.y_train, ds.y_val, ds.y_test])
    seed_everything(params.seed)
    nets = {k: getattr(p, k) for k in ("net", "width", "steps", "batch_size", "lr")}
    with tracking.stage_run(experiment, "evalnets", {"seed": params.seed, "evalnets": nets}):
        classifier = build_classifier(p.net, ds.channels, ds.num_classes, p.width)
        with progress_bar(f"evalnets[{experiment}] evaluation classifier", p.steps) as bar:
            train_classifier(classifier, x, y, steps=p.steps, batch_size=p.batch_size, lr=p.lr, progress=bar)
        metrics = {"classifier_train_accuracy": accuracy(classifier, x, y)}  # a fit: trained on every image
        tracking.log_metrics(metrics)
    save_classifier(
        classifier,
        paths.eval_nets / "classifier.pt",
        net=p.net,
        in_channels=ds.channels,
        num_classes=ds.num_classes,
        width=p.width,
    )
    (paths.eval_nets / "regressor.pt").unlink(missing_ok=True)
    write_json(paths.metrics / "evalnets.json", metrics)
    info(
        f"evalnets[{experiment}]: evaluation classifier accuracy {metrics['classifier_train_accuracy']:.4g} on the "
        "real images it was trained on"
    )
    return metrics
