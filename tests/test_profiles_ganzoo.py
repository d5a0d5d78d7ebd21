"""profiles/ganzoo.yaml: the GAN family at full size on MNIST, Fashion-MNIST and CIFAR-10 files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.artifacts import Paths, load_gan, read_json
from pipeline.cli import run_stage
from pipeline.errors import DataError
from pipeline.params import load_params, validate
from tests.conftest import REPO
from tests.fixtures import write_cifar10

PROFILE = REPO / "profiles" / "ganzoo.yaml"
KINDS = {"dcgan", "cdcgan", "acgan", "2ngan", "infogan", "projection", "s3gan"}


def test_ganzoo_profile_loads_every_kind_for_three_data_sets():
    params = load_params(PROFILE)
    assert params.groups.ganzoo == ("ganzoo_mnist", "ganzoo_fashion_mnist", "ganzoo_cifar10")
    for name, data in zip(params.groups.ganzoo, ("mnist", "fashion_mnist", "cifar10"), strict=True):
        exp = params.experiment(name)
        assert (exp.task, exp.data.name, exp.data.image_size) == ("ganzoo", data, 32)
        variants = {v: exp.gan.variant(v) for v in exp.gan.variants}
        assert {p.kind for p in variants.values()} == KINDS
        assert len({(p.steps, p.batch_size, p.n_dis) for p in variants.values()}) == 1  # one budget for all
        fractions = {(p.kind, p.label_fraction) for p in variants.values() if p.kind in ("projection", "s3gan")}
        assert fractions == {
            ("projection", 1.0),
            ("projection", 0.2),
            ("projection", 0.1),
            ("s3gan", 0.2),
            ("s3gan", 0.1),
        }
        with pytest.raises(DataError, match="nothing is downloaded"):  # the placeholder root: a clear error
            run_stage("prepare", params, name, Paths(name, Path("/nonexistent-root")))


# full-size nets (ten GANs at 32x32, width 64) for 2 steps each on CPU: 6 min 40 s here while three GAN
# trainings ran alongside
@pytest.mark.slow
def test_ganzoo_profile_runs_on_tiny_cifar_files(tmp_path):
    write_cifar10(tmp_path / "data", train_per_class=6, test_per_class=3)
    raw = yaml.safe_load(PROFILE.read_text())
    name = "ganzoo_cifar10"
    exp = raw["experiments"][name]
    raw["experiments"] = {name: exp}
    raw["groups"]["ganzoo"] = [name]
    exp["data"].update(root=str(tmp_path / "data"), val_per_class=1)
    exp["teacher"].update(steps=2, batch_size=8, lr=0.01)
    exp["gan"].update(steps=2, batch_size=8, ema_start=1, checkpoint_every=2, log_every=1)
    exp["evaluate"].update(n_fake_per_class=3)
    params = validate(raw)
    paths = Paths(name, tmp_path / "repo")
    for stage in params.stages(name):
        run_stage(stage, params, name, paths)
    summary = read_json(paths.summary_json)
    assert set(summary["gan"]) == set(exp["gan"]["variants"])
    arch = load_gan(paths.generator("s3gan_l10"))["arch"]
    assert (arch["arch"], arch["g_width"], arch["semi"], arch["data_shape"]) == ("sngan", 64, True, (3, 32, 32))
    assert load_gan(paths.generator("acgan"))["arch"]["d_aux"] == 10
