"""embed: ILI's label embedding -> models/<experiment>/embed.pt.

First a regression net x -> h (128-d) -> y on the normalised training labels (MSE), then
y2h : y -> h such that the net's frozen h -> y head maps y2h(y) back to y. The GAN stage loads
y2h into G (conditional BN) and D (projection) of every ILI variant.
"""

from __future__ import annotations

import torch

from pipeline import tracking
from pipeline.artifacts import Paths, save_embedding, write_json
from pipeline.data import load_dataset
from pipeline.distill.fit import mae
from pipeline.distill.train import train_classifier
from pipeline.gan.embedding import train_y2h
from pipeline.nets import Y2H, LabelEmbedNet, build_classifier
from pipeline.params import Params
from pipeline.ui import info, progress_bar
from pipeline.utils import seed_everything


def run(params: Params, experiment: str, paths: Paths) -> dict:
    p = params.experiment(experiment).embed
    ds = load_dataset(paths.prepared)
    u = ds.normalise(ds.y_train)
    seed_everything(params.seed)
    in_channels = ds.channels if ds.is_image else ds.x_train.shape[1]
    net = LabelEmbedNet(build_classifier(p.net, in_channels, 1, p.width))
    y2h = Y2H()
    with tracking.stage_run(experiment, "embed", {"seed": params.seed, "embed": p.model_dump(mode="json")}):
        with progress_bar(f"embed[{experiment}] x->h->y", p.steps) as bar:
            h1 = train_classifier(
                net, ds.x_train, u, steps=p.steps, batch_size=p.batch_size, lr=p.lr, loss="mse", progress=bar
            )
        with progress_bar(f"embed[{experiment}] y2h", p.y2h_steps) as bar:
            h2 = train_y2h(
                y2h,
                net.head,
                u,
                steps=p.y2h_steps,
                batch_size=p.batch_size,
                lr=p.y2h_lr,
                gamma_std=p.gamma_std,
                progress=bar,
            )
        x_eval, y_eval = (ds.x_val, ds.y_val) if len(ds.y_val) else (ds.x_test, ds.y_test)
        grid = torch.linspace(0, 1, 501)
        with torch.no_grad():
            roundtrip = net.head(y2h(grid)).view(-1)
        metrics = {
            "net_mae": mae(net, ds, x_eval, y_eval),
            "net_mae_split": "val" if len(ds.y_val) else "test",
            "y2h_roundtrip_mae": float((ds.denormalise(roundtrip) - ds.denormalise(grid)).abs().mean()),
        }
        tracking.log_history(h1, "net_")
        tracking.log_history(h2, "y2h_")
        tracking.log_metrics({k: v for k, v in metrics.items() if isinstance(v, float)})
    save_embedding(paths.embed, y2h=y2h, net=net)
    write_json(paths.metrics / "embed.json", metrics)
    info(
        f"embed[{experiment}]: regression net MAE {metrics['net_mae']:.4g} ({metrics['net_mae_split']}), y2h "
        f"round trip MAE {metrics['y2h_roundtrip_mae']:.4g} ({ds.label_name})"
    )
    return metrics
