"""Smoke tests of the full-size regression profiles (profiles/rc49.yaml, utkface.yaml, steering_angle.yaml).

Each profile runs every stage of its experiment in this process on a tiny HDF5 file written in the real
on-disk layout, with every step count at 2 and every count-like parameter (fakes, burn-in, batch sizes,
evaluation sizes) at its minimum, but with the nets exactly as the profile has them: 64x64 images, the
papers' widths. What breaks only at full size (a 64x64 net, a flattened D head, a VGG on 64x64 maps, the
rule-of-thumb vicinity on the file's labels) breaks here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from pipeline.artifacts import Paths, load_generator
from pipeline.checkpoint import load_checkpoint
from pipeline.cli import run_stage
from pipeline.data import load_dataset
from pipeline.gan.vicinal import rule_of_thumb
from pipeline.params import load_params
from tests.conftest import REPO
from tests.h5files import write_rc49, write_steering_angle, write_utkface

WRITERS = {"rc49": write_rc49, "utkface": write_utkface, "steering_angle": write_steering_angle}
STEPS = 2
# count-like parameters, per section, at the smallest values the tiny files allow (batch norm needs 2 per batch)
COUNTS = {
    "embed": {"batch_size": 4},
    "teacher": {"batch_size": 4, "eval_every": 1},
    "gan": {"batch_size": 2, "checkpoint_every": STEPS, "log_every": 1, "ema_start": 0, "n_bins": 2},
    "features": {"batch_size": 4},
    # no label window: the 2-step autoencoder's label head is untrained, so the window would reject nearly every
    # fake and each short label would cost 100 x its count of full-size G passes (minutes on 2 CPU cores); the
    # window is tested with the built-in chairs (test_cli)
    "dre": {"batch_size": 4, "fakes_per_real": 1, "burnin": 2, "batch_size_rs": 8, "zeta_factor": None},
    "synthesize": {"n_fake": 8, "n_per_label": 2, "n_burnin": 4, "batch_size": 8},
    "student": {"batch_size": 4, "eval_every": 1},
    "evaluate": {"batch_size": 4, "n_labels": 2, "n_fake_per_label": 2, "n_bins": 1},
}


def _shrink(exp: dict, root: Path) -> dict:
    """The profile's experiment with data.root at `root`, every *steps key at STEPS and COUNTS applied."""
    exp["data"]["root"] = str(root)
    for section in exp.values():
        if isinstance(section, dict):
            section.update({k: STEPS for k in section if k == "steps" or k.endswith("_steps")})
    for section, counts in COUNTS.items():
        exp[section].update(counts)
    return exp


def _outputs(stage: str, paths: Paths, exp) -> list[Path]:
    """What each stage must leave behind."""
    m = paths.metrics
    return {
        "prepare": [paths.prepared / "dataset.pt", m / "prepare.json"],
        "embed": [paths.embed, m / "embed.json"],
        "teacher": [paths.teacher, m / "teacher.json"],
        "gan": [
            m / "gan.json",
            *(p for v in exp.gan.variants for p in (paths.generator(v), m / f"gan_samples_{v}.png")),
        ],
        "features": [paths.features, m / "features.json"],
        "dre": [paths.dre, m / "dre.json"],
        "synthesize": [paths.fakes, paths.synthetic / "subsampling.json", m / "synthesize.json"],
        "student": [m / "students.json", *(paths.students / f"{v}.pt" for v in exp.student.variants)],
        "evalnets": [paths.eval_nets / "regressor.pt", m / "evalnets.json"],
        "evaluate": [paths.summary_json, paths.summary_md, paths.headline],
    }[stage]


def _numbers(value, where: str = ""):
    """(path, number) for every int or float inside a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{where}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield where, value


def _check_profile(name: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    WRITERS[name](data)
    raw = yaml.safe_load((REPO / "profiles" / f"{name}.yaml").read_text())
    full = load_params(REPO / "profiles" / f"{name}.yaml").experiment(name)  # the profile as committed is valid
    _shrink(raw["experiments"][name], data)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(params_file)
    exp = params.experiment(name)
    assert (exp.data.image_size, exp.gan.g_width, exp.gan.d_width) == (64, full.gan.g_width, full.gan.d_width)
    paths = Paths(name, tmp_path / "repo")
    for stage in params.stages(name):
        run_stage(stage, params, name, paths)
        missing = [str(p) for p in _outputs(stage, paths, exp) if not p.exists()]
        assert not missing, (stage, missing)

    metrics = {p: json.loads(p.read_text()) for p in [*paths.metrics.glob("*.json"), paths.summary_json]}
    bad = [(str(p), k, v) for p, blob in metrics.items() for k, v in _numbers(blob) if not math.isfinite(v)]
    assert not bad, bad
    summary = json.loads(paths.summary_json.read_text())
    assert {*exp.gan.variants, f"{exp.dre_variant}+dre", f"{exp.dre_variant}+cdre"} <= set(summary["gan"])
    assert set(summary["students"]) == set(exp.student.variants)
    ds = load_dataset(paths.prepared)
    assert ds.x_train.shape[1:] == (3, 64, 64)
    # the vicinity is the rule of thumb on the prepared training labels (no sigma / kappa / nu in the profile)
    assert full.gan.sigma is None and full.gan.kappa is None and full.gan.nu is None
    sigma, kappa, nu = rule_of_thumb(ds.normalise(ds.y_train), exp.gan.m_kappa)
    gan = json.loads((paths.metrics / "gan.json").read_text())
    for variant, spec in exp.gan.variants.items():
        if spec.vicinity != "binned":
            assert gan[variant]["sigma"] == pytest.approx(sigma) and gan[variant]["nu"] == pytest.approx(nu)
            assert gan[variant]["kappa"] == pytest.approx(kappa)
        G = load_generator(paths.generator(variant))  # G at the profile's widths, 64x64 out
        G = getattr(G, "inner", G)  # the binned baseline's class-conditional G
        assert G.dense.out_features == 4 * 4 * 16 * exp.gan.g_width and G.z_dim == exp.gan.z_dim
    # D with the reference's head: 16 x d_width channels at 4x4, flattened into the linear term
    state = load_checkpoint(paths.generator(exp.dre_variant))["state"]["D"]
    assert state["linear.parametrizations.weight.original"].shape == (1, 4 * 4 * 16 * exp.gan.d_width)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_regression_profile_is_valid_and_full_size(name: str) -> None:
    """The committed profile loads as it is (root is a placeholder the user sets) and keeps the papers' sizes."""
    params = load_params(REPO / "profiles" / f"{name}.yaml")
    assert list(params.experiments) == [name] and params.groups.regression == (name,)
    exp = params.experiment(name)
    assert exp.data.name == name and exp.data.image_size == 64 and "/path/to/" in str(exp.data.root)
    assert (exp.gan.arch, exp.gan.g_width, exp.gan.d_width, exp.gan.d_head, exp.gan.z_dim) == (
        "sngan",
        64,
        64,
        "ccgan",
        256,
    )
    assert (exp.gan.sigma, exp.gan.kappa, exp.gan.nu) == (None, None, None)  # the rule of thumb
    assert {"svdl_ili", "hvdl_ili", "binned"} == set(exp.gan.variants) and exp.dre_variant == "svdl_ili"
    assert exp.evaluate.net == exp.embed.net == "resnet34" and exp.teacher.net.startswith("vgg")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WRITERS))
def test_regression_profile_runs_every_stage_at_full_size(name: str, tmp_path: Path) -> None:
    _check_profile(name, tmp_path)
