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


def tiny_raw_params() -> dict:
    """The committed params.yaml with its first experiment shrunk to a few seconds of work."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    name = next(iter(raw["experiments"]))
    exp = copy.deepcopy(raw["experiments"][name])
    exp["data"].update(train_per_class=6, image_size=8)
    exp["teacher"].update(steps=20, width=4, batch_size=16)
    exp["gan"].update(steps=6, g_width=8, d_width=8, batch_size=8, ema_start=2, checkpoint_every=3, log_every=2, z_dim=8)
    exp["synthesize"].update(n_fake_per_class=10, n_burnin_per_class=10, batch_size=32)
    exp["student"].update(steps=10, width=4, batch_size=16)
    exp["evaluate"].update(n_fake_per_class=4)
    return {"seed": raw.get("seed", 0), "experiments": {"tiny": exp}}


@pytest.fixture
def tiny_params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_raw_params(), sort_keys=False))
    return path
