"""Shared fixtures: the real params.yaml, shrunk to seconds; MLflow pointed at a temp DB."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _isolated_mlflow(tmp_path_factory: pytest.TempPathFactory):
    """Every MLflow run of the tests goes to a throw-away SQLite store."""
    mp = pytest.MonkeyPatch()
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    mp.setenv("DVC_NO_ANALYTICS", "1")
    torch.set_num_threads(2)
    yield
    mp.undo()


CLASSIFICATION_METHODS = ("blkd", "fitnet", "at", "rkd", "crd", "takd")  # every KD method (the whole-pipeline tests)
REGRESSION_METHODS = ("fitnet", "at", "rkd")
TINY_NAMES = {
    "classification": "tiny",
    "regression": "tiny_reg",
    "circle": "tiny_circle",
    "ganzoo": "tiny_zoo",
    "translation": "tiny_trans",
}


def _shrink(exp: dict) -> dict:
    """One experiment of params.yaml cut down to seconds of work, by task."""
    exp = copy.deepcopy(exp)
    task = exp["task"]
    if task == "classification":
        exp["data"].update(train_per_class=6, image_size=8)
        exp["teacher"].update(steps=20, width=4, batch_size=16)
        exp["gan"].update(
            steps=6, g_width=8, d_width=8, batch_size=8, ema_start=2, checkpoint_every=3, log_every=2, z_dim=8
        )
        exp["dre"].update(steps=10, width=16, fakes_per_real=2, burnin=4, batch_size=16, batch_size_rs=32)
        exp["synthesize"].update(n_fake_per_class=10, n_burnin_per_class=10, batch_size=32)
        exp["student"].update(steps=10, width=4, batch_size=16)
        exp["student"]["takd"] = {"net": "resnet", "width": 4}
        exp["features"].update(steps=10, width=4, batch_size=16)
        exp["evaluate"].update(n_fake_per_class=4, net="cnn", steps=10, width=4, batch_size=16)
    elif task == "regression":
        exp["data"].update(n_models=3, angle_step=5.0, image_size=16, max_per_label=2, val_fraction=0.2)
        exp["embed"].update(net="cnn", steps=10, y2h_steps=10, width=4, batch_size=16)
        exp["teacher"].update(net="cnn", steps=10, width=4, batch_size=16)
        exp["gan"].update(
            steps=4, g_width=8, d_width=8, batch_size=8, ema_start=1, checkpoint_every=2, log_every=2, z_dim=8, n_bins=4
        )
        exp["features"].update(steps=10, width=4, code_dim=8, batch_size=16)
        exp["dre"].update(steps=10, width=16, fakes_per_real=2, burnin=4, batch_size=16, batch_size_rs=32)
        exp["synthesize"].update(n_fake=40, n_per_label=4, n_burnin=20, batch_size=16)
        exp["student"].update(steps=10, width=4, batch_size=16)
        exp["evaluate"].update(net="cnn", steps=10, width=4, batch_size=16, n_labels=4, n_fake_per_label=4, n_bins=2)
    elif task == "ganzoo":  # every kind, S3GAN and the projection GAN with half the labels, KD-DLGAN
        exp["data"].update(train_per_class=6, val_per_class=2, image_size=8)
        exp["teacher"].update(steps=20, width=4, batch_size=16)
        exp["gan"].update(
            steps=6, g_width=8, d_width=8, batch_size=8, ema_start=2, checkpoint_every=3, log_every=2, z_dim=8
        )
        exp["gan"]["variants"] = {
            **{k: {"kind": k} for k in ("dcgan", "cdcgan", "acgan", "2ngan", "infogan", "projection")},
            "projection_l50": {"kind": "projection", "label_fraction": 0.5, "loss": "hinge"},
            "s3gan_l50": {"kind": "s3gan", "label_fraction": 0.5, "loss": "hinge"},
            "kd_dlgan_d50": {  # data-limited: half the images, DiffAugment and KD-DLGAN from gan.kd_teacher
                "kind": "projection",
                "data_fraction": 0.5,
                "augment_shift": 1,
                "augment_cutout": 0.5,
                "kd_dlgan": {"agkd": 1.0, "cgkd": 1.0},
            },
        }
        exp["gan"]["kd_teacher"] = dict(exp["teacher"])
        exp["evaluate"].update(n_fake_per_class=4)
    elif task == "translation":
        exp["data"].update(n_models=2, n_train=24, n_test=10, image_size=16)
        exp["gan"].update(
            g_width=4,
            n_blocks=1,
            d_width=4,
            d_layers=2,
            steps=6,
            batch_size=2,
            pool_size=3,
            log_every=2,
            checkpoint_every=3,
        )
        exp["evaluate"].update(steps=10, width=4, batch_size=16)
    else:
        exp["data"].update(n_train_angles=12, per_angle=3, n_eval_angles=8, eval_per_angle=5)
        exp["embed"].update(steps=10, y2h_steps=10, width=16, batch_size=16)
        exp["gan"].update(
            steps=10,
            g_width=16,
            d_width=16,
            batch_size=16,
            log_every=5,
            checkpoint_every=5,
            n_bins=12,
            label_gap=1 / 12,
        )
        exp["gan"]["variants"] = {
            "hvdl": {"vicinity": "hard"},
            "svdl_ili": {"vicinity": "soft", "label_input": "ili"},
            "binned": {"vicinity": "binned"},
        }
        exp["features"].update(steps=10, width=8, code_dim=8, batch_size=16)
        exp["dre"].update(
            gan_variant="svdl_ili", steps=10, width=16, fakes_per_real=2, burnin=4, batch_size=16, batch_size_rs=32
        )
    return exp


def tiny_raw_params(*tasks: str) -> dict:
    """The committed params.yaml, one experiment per task (default: classification only) shrunk
    to seconds of work and renamed (TINY_NAMES), with matching DVC groups."""
    from pipeline.params import GROUP_TASKS

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    tasks = tasks or ("classification",)
    experiments = {}
    for task in tasks:
        exp = next(e for e in raw["experiments"].values() if e["task"] == task)
        experiments[TINY_NAMES[task]] = _shrink(exp)
    groups = {g: [n for n, e in experiments.items() if e["task"] in ts] for g, ts in GROUP_TASKS.items()}
    return {"seed": raw.get("seed", 0), "groups": groups, "experiments": experiments}


@pytest.fixture
def tiny_params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_raw_params(), sort_keys=False))
    return path


def build_experiment(tmp: Path, task: str, name: str, stages: list[str], **gan) -> tuple[Path, Path]:
    """A params file with one tiny experiment of `task` (named `name`, its gan section updated with
    `gan`) and a repository root under `tmp` where `stages` have run in process; returns both."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    raw = tiny_raw_params(task)
    exp = raw["experiments"][name]
    exp["gan"].update(gan)
    if task == "classification":
        exp["data"]["val_per_class"] = 4
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    root = tmp / "repo"
    for stage in stages:
        result = CliRunner().invoke(app, [stage, "-e", name, "-p", str(params), "--root", str(root)])
        assert result.exit_code == 0, (stage, result.output)
    return params, root
