"""dre: DRE-F-SP and cDRE-F-cSP for one GAN variant -> models/<experiment>/dre.pt.

Both ratio nets are trained on the feature extractor's h of the real training samples and of
fakes generated at each real sample's label, fresh as training goes (a block of fakes for
dre.fresh_block batches at a time, each shown dre.fresh_reuse times; or a fixed pool of
fakes_per_real per real), so real and fake features pair at equal labels; for continuous labels the fakes are
drawn in the label window as rejection sampling keeps them. Held-out statistics use the
validation split (else the test split, which for the circle is the unseen evaluation angles):
the Softplus loss, mean psi on reals and fakes, and the AUC of psi between held-out reals and
fresh fakes (one per held-out real, at its label).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from pipeline import tracking
from pipeline.artifacts import Paths, load_features, load_generator, load_y2h, save_dre, write_json
from pipeline.data import ImageDataset, RegressionDataset, load_dataset
from pipeline.figures import save_curves
from pipeline.gan.train import sample
from pipeline.nets.backbone import Backbone
from pipeline.params import Params
from pipeline.subsample.fit import fit_ratio, label_window, ratio_data
from pipeline.ui import info, progress_bar
from pipeline.utils import seed_everything


@dataclass(frozen=True)
class Inputs:
    """What the ratio nets of one experiment train on: the data set, DRE's feature net, the GAN
    variant's generator (generate(y) -> images at labels y), the labels as the nets take them
    (normalised for continuous ones), the held-out split and its name, the label window and y2h."""

    ds: ImageDataset | RegressionDataset
    phi: Backbone
    variant: str
    generate: Callable[[Tensor], Tensor]
    train: tuple[Tensor, Tensor]
    held: tuple[Tensor, Tensor]
    split: str
    zeta: float | None
    y2h: dict[str, Tensor] | None

    @property
    def num_classes(self) -> int:
        return 0 if self.y2h is not None else self.ds.num_classes


def inputs(exp, paths: Paths) -> Inputs:
    """The dre stage's inputs, loaded from the upstream stages' outputs (bench-dre reads the same)."""
    continuous = exp.task != "classification"
    ds = load_dataset(paths.prepared)
    phi = load_features(paths.features)
    G = load_generator(paths.generator(exp.dre_variant))
    label = ds.normalise if continuous else (lambda y: y)
    held, split = ((ds.x_val, ds.y_val), "val") if len(ds.y_val) else ((ds.x_test, ds.y_test), "test")
    y_train = label(ds.y_train)
    return Inputs(
        ds,
        phi,
        exp.dre_variant,
        lambda y: sample(G, y, exp.gan.z_dim, exp.dre.batch_size_rs),
        (ds.x_train, y_train),
        (held[0], label(held[1])),
        split,
        label_window(y_train, exp.dre.zeta_factor, continuous),
        load_y2h(paths) if continuous else None,
    )


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    p = exp.dre
    inp = inputs(exp, paths)
    variant, split, zeta = inp.variant, inp.split, inp.zeta
    seed_everything(params.seed)
    with tracking.stage_run(
        experiment, "dre", {"seed": params.seed, "dre": p.model_dump(mode="json"), "gan_variant": variant}
    ):
        data = ratio_data(inp.phi, inp.generate, inp.train, inp.held, p, zeta)
        fitted = {}
        for method in ("dre", "cdre"):
            with progress_bar(f"dre[{experiment}] {method}", p.steps) as bar:
                fitted[method] = fit_ratio(data, method, p, num_classes=inp.num_classes, y2h=inp.y2h, progress=bar)
        metrics = {
            "gan_variant": variant,
            "zeta": zeta,
            "held_out_split": split,
            **{m: f.stats for m, f in fitted.items()},
        }
        for m, f in fitted.items():
            tracking.log_history(f.history, f"{m}_train_")
            tracking.log_metrics({f"{m}_{k}": v for k, v in f.stats.items()})
        save_curves(
            {m: ([r["step"] for r in f.history], [r["loss"] for r in f.history]) for m, f in fitted.items()},
            paths.metrics / "dre_losses.png",
            f"{experiment}: Softplus DRE loss ({variant})",
        )
        tracking.log_artifact(paths.metrics / "dre_losses.png")
    save_dre(paths.dre, gan_variant=variant, zeta=zeta, nets={m: f.checkpoint() for m, f in fitted.items()})
    write_json(paths.metrics / "dre.json", metrics)
    info(
        f"dre[{experiment}] ({variant}): "
        + "; ".join(
            f"{m} {split} loss {f.stats['held_out_loss']:.4g}, AUC real vs fake {f.stats['auc_real_vs_fake']:.3f}"
            for m, f in fitted.items()
        )
    )
    return metrics
