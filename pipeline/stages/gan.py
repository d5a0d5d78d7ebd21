"""gan: trains the experiment's conditional GAN(s) -> models/<experiment>/gan/<variant>.pt.

classification: one class-conditional GAN (variant "cgan") of kind `gan.kind`. ganzoo: one GAN
per entry of `gan.variants` (each a kind, with its own overrides of the shared settings).
Continuous labels (regression, circle): one CcGAN per variant of `gan.variants` (HVDL / SVDL
with NLI or ILI, or the cGAN baseline on binned labels), on labels normalised to [0, 1], with the
rule-of-thumb vicinity unless sigma / kappa / nu are set.

Each checkpoint holds G, D, G_ema, both optimisers, the step, the loss history, the RNG state,
the config that made it and the arguments that build G. A rerun with the same config resumes
where it stopped (or does nothing if it finished); a different config starts afresh.
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from pathlib import Path

import torch

from pipeline import runtime, tracking
from pipeline.artifacts import (
    Paths,
    load_gan,
    load_generator,
    load_y2h,
    save_classifier,
    save_gan,
    write_csv,
    write_json,
)
from pipeline.augment import diff_augment
from pipeline.checkpoint import load_checkpoint
from pipeline.data import load_dataset, training_label_grid
from pipeline.distill.fit import fit, score
from pipeline.errors import CheckpointError
from pipeline.figures import save_curves, save_figure, save_grid
from pipeline.gan.cycle import CycleState
from pipeline.gan.train import GanState, sample, train_gan
from pipeline.gan.variants import VariantSetup, build_variant, variant_jobs
from pipeline.params import GAN_CONFIG_DEFAULTS, GanParams, Params
from pipeline.ui import info, progress_bar
from pipeline.utils import seed_everything


def _fit(
    name: str,
    p: GanParams,
    G: torch.nn.Module,
    D: torch.nn.Module,
    setup: VariantSetup,
    config: str,
    path: Path,
) -> GanState:
    """Train (or resume) one GAN; checkpoints go to `path`."""
    rt = runtime.current()
    assert setup.objective is not None
    arch = setup.arch
    state = GanState.create(rt.prepare(G), rt.prepare(D), p.lr_g, p.lr_d, (p.beta1, p.beta2))
    resume(state, path, config, name, p.steps)

    def checkpoint(s: GanState) -> None:
        save_gan(path, config=config, arch=arch, state=s.state_dict())

    augment = (
        partial(diff_augment, max_shift=p.augment_shift, cutout=p.augment_cutout)
        if p.augment_shift or p.augment_cutout
        else (lambda x: x)
    )
    with progress_bar(name, p.steps) as bar:
        bar(state.step, {})
        train_gan(
            state,
            setup.cond,
            objective=setup.objective.to(rt.device),
            z_dim=p.z_dim,
            steps=p.steps,
            n_dis=p.n_dis,
            batch_size=p.batch_size,
            ema_decay=p.ema_decay,
            ema_start=p.ema_start,
            augment=augment,
            compiled=p.compile,
            log_every=p.log_every,
            checkpoint_every=p.checkpoint_every,
            on_checkpoint=checkpoint,
            progress=bar,
        )
    return state


def resume(state: GanState | CycleState, path: Path, config: str, name: str, steps: int) -> None:
    """Load the training state of the checkpoint at `path` into `state` when it was made under the
    same `config` (else, or without a checkpoint, training starts afresh)."""
    if not path.exists():
        return
    try:
        ckpt = load_gan(path)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; delete it to train from scratch") from None
    if ckpt.get("config") == config:
        state.load_state_dict(ckpt["state"])
        info(f"{name}: resuming from step {state.step} of {steps}")
    else:
        info(f"{name}: params changed since the last checkpoint, training from scratch")


def _config(p: GanParams, seed: int, x: torch.Tensor, y: torch.Tensor, **extra) -> str:
    gan = p.model_dump(mode="json", exclude={"variants"})
    for key, default in GAN_CONFIG_DEFAULTS.items():  # checkpoints made before the option keep their config
        if key in gan and gan[key] == default:
            del gan[key]
    return json.dumps({"gan": gan, "seed": seed, "data": data_id(x, y), **extra}, sort_keys=True)


def data_id(x: torch.Tensor, y: torch.Tensor) -> str:
    """What identifies the training data in a config: a digest of the images and labels (or of a
    translation's two domains)."""
    return hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()[:16]


def run(params: Params, experiment: str, paths: Paths) -> dict:
    exp = params.experiment(experiment)
    if exp.task == "translation":
        from pipeline.stages import translation

        return translation.train(params, experiment, paths)
    p = exp.gan
    ds = load_dataset(paths.prepared)
    paths.gan.mkdir(parents=True, exist_ok=True)
    (paths.metrics / "gan_losses").mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict] = {}
    histories: dict[str, list[dict[str, float]]] = {}
    with tracking.stage_run(experiment, "gan", {"seed": params.seed, "gan": p.model_dump(mode="json")}):
        own = own_encoder(exp, ds, paths, params.seed)
        for variant, spec, pv in variant_jobs(exp):
            seed_everything(params.seed)
            setup, G, D, extra = build_variant(exp, ds, spec, partial(load_y2h, paths), params.seed, own)
            if setup.vicinity is not None:
                v = setup.vicinity
                summary[variant] = {"sigma": v.sigma, "kappa": v.kappa, "nu": v.nu, "window": v.radius}
            config = _config(
                pv,
                params.seed,
                ds.x_train,
                ds.y_train,
                variant=variant,
                spec=None if spec is None or isinstance(spec, GanParams) else spec.model_dump(),  # ganzoo: spec is pv
                **extra,
            )
            state = _fit(f"gan[{experiment}/{variant}]", pv, G, D, setup, config, paths.generator(variant))
            tracking.log_history(state.history, f"{variant}_")
            histories[variant] = state.history
            write_csv(paths.metrics / "gan_losses" / f"{variant}.csv", state.history)
            last = state.history[-1] if state.history else {}
            summary.setdefault(variant, {}).update(
                steps=state.step, d_loss=last.get("d_loss"), g_loss=last.get("g_loss")
            )
            info(
                f"gan[{experiment}/{variant}]: {state.step} steps, last d_loss "
                f"{last.get('d_loss', float('nan')):.3f} g_loss {last.get('g_loss', float('nan')):.3f}"
            )
        _pictures(exp, ds, paths, list(histories), params.seed)
        curves = {
            f"{v} {k}": ([r["step"] for r in h], [r[k] for r in h])
            for v, h in histories.items()
            for k in ("d_loss", "g_loss")
        }
        save_curves(curves, paths.metrics / "gan_losses.png", f"GAN losses ({experiment})")
        for f in sorted(paths.metrics.glob("gan_*.png")):
            tracking.log_artifact(f)
    write_json(paths.metrics / "gan.json", summary)
    return summary


def own_encoder(exp, ds, paths: Paths, seed: int) -> Path | None:
    """KD-DLGAN's encoder 'teacher': a classification experiment's teacher, or for a ganzoo the
    classifier gan.kd_teacher trained here on the full training split (kept apart from the
    evaluation teacher; retrained only when its params, seed or data change)."""
    if exp.task == "classification":
        return paths.teacher
    if exp.task != "ganzoo" or not exp.gan.needs_kd_teacher:
        return None
    p = exp.gan.kd_teacher
    path = paths.kd_teacher
    data = data_id(ds.x_train, ds.y_train)
    config = json.dumps({"kd_teacher": p.model_dump(mode="json"), "seed": seed, "data": data}, sort_keys=True)
    if path.exists():
        try:
            if load_checkpoint(path).get("config") == config:
                return path
        except CheckpointError:
            pass  # unreadable: train it again
    with progress_bar(f"kd_teacher[{paths.experiment}]", p.steps) as bar:
        model, _ = fit(p, "classification", ds, seed=seed, progress=bar)
    accuracy = score("classification", ds, model, "test")
    save_classifier(
        model, path, net=p.net, in_channels=ds.channels, num_classes=ds.num_classes, width=p.width, config=config
    )
    runtime.current().broadcast(accuracy)  # under torchrun, a collective: no rank reads the file before rank 0 wrote it
    info(f"kd_teacher[{paths.experiment}]: test accuracy {accuracy:.4f} -> {path}")
    return path


def _pictures(exp, ds, paths: Paths, variants: list[str], seed: int) -> None:
    """Sample grids (images) or scatter plots (points) from each G_ema; InfoGAN: its codes' grid."""
    for variant in variants:
        G = load_generator(paths.generator(variant))
        pv = exp.gan.variant(variant) if exp.task == "ganzoo" else exp.gan
        z_dim = pv.z_dim
        torch.manual_seed(seed)
        if exp.task in ("classification", "ganzoo"):
            n = 10  # a row per class (code), 10 samples each
            name = "gan_samples.png" if exp.task == "classification" else f"gan_samples_{variant}.png"
            y = torch.arange(ds.num_classes).repeat_interleave(n)
            save_grid(sample(G, y, z_dim), paths.metrics / name, nrow=n)
            if pv.kind == "infogan" and pv.info_continuous:
                save_grid(info_grid(G, ds.num_classes, z_dim), paths.metrics / f"gan_codes_{variant}.png", nrow=n)
        elif ds.is_image:
            n = 10  # rows: 10 labels evenly spaced over the training range; columns: 10 samples
            u = training_label_grid(ds, 10)
            save_grid(sample(G, u.repeat_interleave(n), z_dim), paths.metrics / f"gan_samples_{variant}.png", nrow=n)
        else:
            _scatter(
                ds, sample(G, ds.normalise(ds.y_test), z_dim), paths.metrics / f"gan_samples_{variant}.png", variant
            )


@torch.no_grad()
def info_grid(G: torch.nn.Module, num_codes: int, z_dim: int, n: int = 10, span: float = 2.0) -> torch.Tensor:
    """InfoGAN's codes: row c is categorical code c, column j sets the first continuous code (z[0])
    to -span + 2 span j / (n - 1); the rest of z is one draw shared by the whole grid."""
    z = torch.randn(1, z_dim).repeat(num_codes * n, 1)
    z[:, 0] = torch.linspace(-span, span, n).repeat(num_codes)
    return G.eval()(z, torch.arange(num_codes).repeat_interleave(n))


def _scatter(ds, fake: torch.Tensor, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(*fake.T.numpy(), s=1, alpha=0.3, label="fake (unseen angles)")
    ax.scatter(*ds.x_train.T.numpy(), s=2, c="red", label="real (training)")
    ax.set_aspect("equal")
    ax.set_title(f"{ds.label_name}: {title}")
    ax.legend(loc="center", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
