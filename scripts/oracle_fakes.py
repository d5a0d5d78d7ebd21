"""Diagnostic: how much could cGAN-KD gain on the built-in chairs with perfect fakes?

Replaces data/<exp>/synthetic/fakes.pt with N fresh renders of the experiment's chairs (random
models, yaw angles uniform over the training label range) in the synthesize stage's format:
y_cond is the rendered angle, y_teacher the teacher's prediction (label adjustment). Then
`cgankd student -e <exp>` trains the students on them, and its cgan_kd rows are the most any GAN
could give at those student settings (compare validation MAE with real_only).

It overwrites a DVC output: run it in a scratch copy of a repository that has run `dvc repro`:

    git clone . /tmp/oracle && cp -a data models /tmp/oracle/ && cd /tmp/oracle
    uv run python scripts/oracle_fakes.py -e chairs -n 2000 && uv run cgankd student -e chairs
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from pipeline.data import load_dataset, render_chairs
from pipeline.params import load_params
from pipeline.stages.common import Paths, load_classifier
from pipeline.stages.synthesize import FAKES
from pipeline.utils import predict, save_torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-e", "--experiment", default="chairs")
    parser.add_argument("-n", "--n-fake", type=int, default=2000)
    parser.add_argument("-p", "--params", default="params.yaml")
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()

    params = load_params(args.params)
    data = params.experiment(args.experiment).data
    if data.name != "chairs":
        parser.error(f"experiments.{args.experiment}: perfect fakes need the built-in chairs, not {data.name}")
    paths = Paths(args.experiment, Path("."))
    ds = load_dataset(paths.prepared)
    rng = np.random.default_rng(args.seed)
    angles = rng.uniform(float(ds.y_train.min()), float(ds.y_train.max()), args.n_fake)
    x = render_chairs(angles, rng.integers(0, data.n_models, args.n_fake), data.image_size, seed=params.seed)
    y_cond = ds.normalise(torch.tensor(angles, dtype=torch.float32))
    y_teacher = predict(load_classifier(paths.teacher), x).view(-1)
    save_torch({"x": x.half(), "y_cond": y_cond, "y_teacher": y_teacher, "threshold": 0.0}, paths.synthetic / FAKES)
    err = float((ds.denormalise(y_teacher) - ds.denormalise(y_cond)).abs().mean())
    print(f"{args.n_fake} rendered fakes -> {paths.synthetic / FAKES}; the teacher's mean error on them: {err:.3f} ({ds.label_name})")


if __name__ == "__main__":
    main()
