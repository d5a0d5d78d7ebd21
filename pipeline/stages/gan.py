"""gan: trains the class-conditional GAN -> models/<experiment>/gan/ (resumable checkpoint).

The checkpoint holds G, D, G_ema, both optimisers, the step, the loss history, the RNG state
and the config that made it. A rerun with the same config resumes where it stopped (or does
nothing if it finished); a different config starts afresh.
"""

from __future__ import annotations

import hashlib
import json
from functools import partial

import torch

from pipeline import tracking
from pipeline.augment import random_shift
from pipeline.checkpoint import load_checkpoint, save_checkpoint
from pipeline.data import load_dataset
from pipeline.errors import CheckpointError
from pipeline.gan.losses import get_loss
from pipeline.gan.train import GanState, sample, train_gan
from pipeline.nets import DISCRIMINATORS, GENERATORS, lookup
from pipeline.params import GanParams, Params
from pipeline.stages.common import Paths, save_curves, save_grid, write_csv
from pipeline.ui import info, progress_bar
from pipeline.utils import seed_everything

CHECKPOINT = "checkpoint.pt"


def build_gan(p: GanParams, num_classes: int, image_size: int, channels: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    G = lookup(GENERATORS, p.arch, "generator")(p.z_dim, num_classes, image_size, channels, width=p.g_width)
    D = lookup(DISCRIMINATORS, p.arch, "discriminator")(num_classes, image_size, channels, width=p.d_width)
    return G, D


def load_generator(paths: Paths, params: Params, experiment: str, num_classes: int, image_size: int, channels: int) -> torch.nn.Module:
    """The EMA generator of a trained GAN, in eval mode."""
    p = params.experiment(experiment).gan
    G, _ = build_gan(p, num_classes, image_size, channels)
    G.load_state_dict(load_checkpoint(paths.gan / CHECKPOINT)["state"]["G_ema"])
    return G.eval()


def run(params: Params, experiment: str, paths: Paths) -> dict:
    p = params.experiment(experiment).gan
    ds = load_dataset(paths.prepared)
    data_id = hashlib.sha256(ds.x_train.numpy().tobytes() + ds.y_train.numpy().tobytes()).hexdigest()[:16]
    config = json.dumps({"gan": p.model_dump(mode="json"), "seed": params.seed, "data": data_id}, sort_keys=True)

    seed_everything(params.seed)
    G, D = build_gan(p, ds.num_classes, ds.image_size, ds.channels)
    state = GanState.create(G, D, p.lr_g, p.lr_d, (p.beta1, p.beta2))
    ckpt_path = paths.gan / CHECKPOINT
    if ckpt_path.exists():
        try:
            ckpt = load_checkpoint(ckpt_path)
        except CheckpointError as err:
            raise CheckpointError(f"{err}; delete it to train from scratch") from None
        if ckpt["config"] == config:
            state.load_state_dict(ckpt["state"])
            info(f"gan[{experiment}]: resuming from step {state.step} of {p.steps}")
        else:
            info(f"gan[{experiment}]: params changed since the last checkpoint, training from scratch")

    def checkpoint(s: GanState) -> None:
        save_checkpoint({"config": config, "state": s.state_dict()}, ckpt_path)

    with tracking.stage_run(experiment, "gan", {"seed": params.seed, "gan": p.model_dump(mode="json")}):
        with progress_bar(f"gan[{experiment}]", p.steps) as bar:
            bar(state.step, {})
            train_gan(
                state, ds.x_train, ds.y_train, loss=get_loss(p.loss), num_classes=ds.num_classes, z_dim=p.z_dim,
                steps=p.steps, n_dis=p.n_dis, batch_size=p.batch_size, ema_decay=p.ema_decay, ema_start=p.ema_start,
                augment=partial(random_shift, max_shift=p.augment_shift),
                log_every=p.log_every, checkpoint_every=p.checkpoint_every, on_checkpoint=checkpoint, progress=bar,
            )
        tracking.log_history(state.history)
        n_per_row = 10
        torch.manual_seed(params.seed)
        grid = sample(state.G_ema, torch.arange(ds.num_classes).repeat_interleave(n_per_row), p.z_dim)
        save_grid(grid, paths.metrics / "gan_samples.png", nrow=n_per_row)
        save_curves(state.history, ["d_loss", "g_loss"], paths.metrics / "gan_losses.png", f"GAN losses ({experiment})")
        write_csv(paths.metrics / "gan_losses.csv", state.history)
        for name in ("gan_samples.png", "gan_losses.png", "gan_losses.csv"):
            tracking.log_artifact(paths.metrics / name)
    last = state.history[-1] if state.history else {}
    info(f"gan[{experiment}]: {state.step} steps, last d_loss {last.get('d_loss', float('nan')):.3f} g_loss {last.get('g_loss', float('nan')):.3f}; samples -> {paths.metrics / 'gan_samples.png'} (a row per class)")
    return {"steps": state.step}
