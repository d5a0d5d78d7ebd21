"""Training-speed benchmark of the circle simulation's GANs (no files written, nothing logged).

Trains every variant of a circle experiment at its params (the paper's: 6000 iterations, batch
128) and prints iterations per second, wall time and the circle metrics of the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from pipeline.data.circle import make_circle
from pipeline.gan.binned import Bins, BinnedGenerator
from pipeline.gan.losses import get_loss
from pipeline.gan.train import GanState, sample, train_gan
from pipeline.gan.variants import continuous_setup
from pipeline.metrics import circle_metrics
from pipeline.nets import build_gan
from pipeline.params import CircleExperiment
from pipeline.utils import seed_everything


def bench_circle(exp: CircleExperiment, seed: int = 0, steps: int | None = None, report: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """{variant: {"it_per_s", "seconds", "ms_per_it", circle metrics}}; ILI variants are skipped
    (they need the embed stage's output)."""
    d, p = exp.data, exp.gan
    steps = steps or p.steps
    ds = make_circle(d.n_train_angles, d.per_angle, d.n_eval_angles, d.eval_per_angle, d.radius, d.std, seed=seed)
    u = ds.normalise(ds.y_train)
    angles = torch.unique(ds.y_test)
    results = {}
    for variant, spec in p.variants.items():
        if spec.label_input == "ili" and spec.vicinity != "binned":
            report(f"{variant}: skipped (ILI needs the embed stage)")
            continue
        seed_everything(seed)
        net = {"arch": p.arch, "data_shape": (2,), "z_dim": p.z_dim, "g_width": p.g_width, "d_width": p.d_width, "depth": p.depth, "periodic_label": p.periodic_label}
        widths = {"m_kappa": p.m_kappa, "gap": p.label_gap, "sigma": p.sigma, "kappa": p.kappa, "nu": p.nu}
        setup = continuous_setup(net, ds.x_train, u, vicinity=spec.vicinity, label_input=spec.label_input, n_bins=p.n_bins, widths=widths)
        G, D = build_gan(**setup.build_args)
        cond = setup.cond
        state = GanState.create(G, D, p.lr_g, p.lr_d, (p.beta1, p.beta2))
        start = time.perf_counter()
        train_gan(state, cond, loss=get_loss(p.loss), z_dim=p.z_dim, steps=steps, n_dis=p.n_dis, batch_size=p.batch_size,
                  ema_decay=p.ema_decay, ema_start=p.ema_start, log_every=steps)
        seconds = time.perf_counter() - start
        bins = setup.arch.get("bins")
        G_eval = BinnedGenerator(state.G_ema, Bins(bins[0], bins[1], p.n_bins)) if bins else state.G_ema
        fake = sample(G_eval, ds.normalise(angles).repeat_interleave(d.eval_per_angle), p.z_dim).view(len(angles), d.eval_per_angle, -1)
        metrics = circle_metrics(fake, angles, radius=d.radius, std=d.std)
        results[variant] = {"it_per_s": steps / seconds, "seconds": seconds, "ms_per_it": 1000 * seconds / steps, **metrics}
        report(
            f"{variant}: {steps} iterations (batch {p.batch_size}) in {seconds:.1f} s = {steps / seconds:.0f} it/s "
            f"({1000 * seconds / steps:.2f} ms/it); high quality {metrics['pct_high_quality']:.1f}%, "
            f"recovered modes {metrics['pct_recovered_modes']:.1f}%, 2-Wasserstein {metrics['w2']:.2e}"
        )
    return results
