"""The full-size profiles (profiles/cifar10.yaml, profiles/cifar100.yaml): they load, and every
stage of their experiment runs end to end on tiny CIFAR files in the real on-disk format, with
the nets at full size and every count (steps, fakes, burn-in, batch) at its minimum."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from pipeline.artifacts import CLASS_VARIANT, Paths, classifier_arch, load_classifier, read_json
from pipeline.cli import run_stage
from pipeline.distill.fit import students
from pipeline.errors import DataError
from pipeline.params import load_params, validate
from tests.conftest import REPO
from tests.fixtures import write_cifar10, write_cifar100

# profile -> (writer of its tiny files, training images per class, test images per class, classes)
PROFILES = {"cifar10": (write_cifar10, 6, 3, 10), "cifar100": (write_cifar100, 2, 2, 100)}


def _raw(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / f"{name}.yaml").read_text())


def shrunk(name: str, root: Path) -> dict:
    """The profile with data.root at `root` and every count at its minimum; nets as they are. The
    learning rates drop to 0.01: two steps of batch 8 at the profiles' 0.05-0.1 (set for about 400
    steps an epoch at batch 128) blow ResNet-110's eval-mode features up to 1e23, and DRE's loss
    on them is NaN."""
    raw = _raw(name)
    exp = raw["experiments"][name]
    exp["data"]["root"] = str(root)
    exp["teacher"].update(steps=2, batch_size=8, eval_every=1, lr=0.01)
    exp["gan"].update(steps=2, batch_size=8, ema_start=1, checkpoint_every=2, log_every=1)
    exp["dre"].update(steps=2, batch_size=8, fakes_per_real=1, burnin=1, batch_size_rs=64)
    exp["synthesize"].update(n_fake_per_class=2, n_burnin_per_class=1, batch_size=64)
    exp["student"].update(steps=2, batch_size=8, eval_every=1, lr=0.01)
    exp["features"].update(steps=2, batch_size=8, eval_every=1, lr=0.01)
    exp["evaluate"].update(n_fake_per_class=2, steps=2, batch_size=8, lr=0.01)
    return raw


@pytest.mark.parametrize("name", PROFILES)
def test_profile_loads_with_full_size_nets_and_a_root_to_set(name):
    params = load_params(REPO / "profiles" / f"{name}.yaml")
    assert list(params.experiments) == [name] and params.groups.kd == (name,)
    exp = params.experiment(name)
    assert (exp.data.name, exp.data.image_size, str(exp.data.root)) == (name, 32, "/path/to/cifar")
    assert exp.gan.batch_size == 512 and exp.gan.n_dis == 4 and exp.synthesize.rho == 0.9
    # the placeholder root is a clear error naming the layout, not a download
    with pytest.raises(DataError, match="nothing is downloaded"):
        run_stage("prepare", params, name, Paths(name, Path("/nonexistent-root")))


def _finite_numbers(node, path: str = "") -> list[str]:
    """Paths of the numbers in a JSON tree that are not finite."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _finite_numbers(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _finite_numbers(v, f"{path}[{i}]")]
    if isinstance(node, float) and not math.isfinite(node):
        return [path]
    return []


@pytest.mark.slow  # full-size nets on CPU: 3.5 (cifar10) and 7 (cifar100) minutes on a shared 2-core VM
@pytest.mark.parametrize("name", PROFILES)
def test_profile_runs_every_stage_on_tiny_cifar_files(tmp_path, name):
    write, train_per_class, test_per_class, classes = PROFILES[name]
    write(tmp_path / "data", train_per_class=train_per_class, test_per_class=test_per_class)
    params = validate(shrunk(name, tmp_path / "data"))
    exp = params.experiment(name)
    paths = Paths(name, tmp_path / "repo")
    for stage in params.stages(name):
        run_stage(stage, params, name, paths)

    prepared = read_json(paths.metrics / "prepare.json")
    assert (prepared["n_train"], prepared["n_test"]) == (classes * train_per_class, classes * test_per_class)
    assert (prepared["num_classes"], prepared["image_size"], prepared["channels"]) == (classes, 32, 3)
    # the nets are the profile's, at full size
    for path, p in (
        (paths.teacher, exp.teacher),
        *((paths.students / f"{s.name}.pt", exp.student) for s in students(exp.student)),
    ):
        arch = classifier_arch(path)
        assert (arch["net"], arch["width"], arch["num_classes"]) == (p.net, p.width, classes), path
    assert sum(t.numel() for t in load_classifier(paths.teacher).parameters()) > 1.5e6
    for out in (paths.features, paths.dre, paths.generator(CLASS_VARIANT), paths.fakes, paths.summary_md):
        assert out.is_file() and out.stat().st_size > 0, out
    summary = read_json(paths.summary_json)
    expected = {s.name for s in students(exp.student)} | ({"assistant"} if "takd" in exp.student.methods else set())
    assert set(summary["students"]) == expected
    synthesize = read_json(paths.metrics / "synthesize.json")
    n_real = prepared["n_train"]
    assert synthesize["n_kept"] >= 1 and summary["students"]["cgan_kd"]["n_train"] == n_real + synthesize["n_kept"]
    assert set(summary["gan"]) == {"cgan", "cgan+dre", "cgan+cdre"}
    for stage_metrics in ("teacher", "gan", "features", "dre", "synthesize", "students"):
        assert not _finite_numbers(read_json(paths.metrics / f"{stage_metrics}.json")), stage_metrics
    assert not _finite_numbers(summary)
    assert all(0 <= r["test_accuracy"] <= 1 for r in summary["students"].values())
