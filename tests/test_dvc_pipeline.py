"""A full `dvc repro` of a tiny config in a temporary copy of the repository."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, tiny_raw_params

BIN = Path(sys.executable).parent


def _dvc(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(cwd),
        "CGANKD_PIPELINE_RUN_ID": "test-run",
    }
    out = subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def _stages_run(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", log))


# about 3.5 min (23 stage processes, three repros): `make test-slow`; test_cli runs the same stages in process
@pytest.mark.slow
def test_dvc_repro_tiny_config(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(REPO / "pipeline", repo / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", repo)
    (repo / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc" / "config", repo / ".dvc" / "config")
    raw = tiny_raw_params("classification", "regression", "circle")
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)

    everything = {
        f"{s}@tiny" for s in ["prepare", "teacher", "gan", "features", "dre", "synthesize", "student", "evaluate"]
    }
    everything |= {
        f"{s}@tiny_reg"
        for s in [
            "prepare",
            "embed",
            "teacher",
            "ccgan",
            "features_continuous",
            "dre_continuous",
            "synthesize",
            "student",
            "evalnets",
            "evaluate_regression",
        ]
    }
    everything |= {
        f"{s}@tiny_circle"
        for s in ["prepare", "embed", "ccgan", "features_continuous", "dre_continuous", "evaluate_simulation"]
    }
    assert (
        _stages_run(_dvc(repo, "repro")) == everything
    )  # each task runs its own chain, chosen by params.yaml's groups
    assert (repo / "dvc.lock").exists()
    assert (repo / "metrics" / "tiny.md").read_text().count("|") > 10
    assert (repo / "models" / "tiny" / "gan" / "cgan.pt").exists()
    assert (repo / "models" / "tiny_reg" / "gan" / "svdl_ili.pt").exists() and (
        repo / "metrics" / "tiny_circle.md"
    ).exists()

    assert _stages_run(_dvc(repo, "repro")) == set()  # nothing changed: nothing runs
    shown = _dvc(repo, "metrics", "show").splitlines()  # one row per experiment, the headline's keys as columns
    assert sorted(line.split()[0] for line in shown[1:]) == [
        f"metrics/{e}/headline.json" for e in ("tiny", "tiny_circle", "tiny_reg")
    ]
    assert shown[0].split()[1:] == sorted(
        [
            "cdre_acceptance",
            "cgan_kd",
            "cgan_kd_gain",
            "gan",
            "gan_cdre",
            "gan_metric",
            "real_only",
            "score",
            "task",
            "teacher",
        ]
    )

    raw["experiments"]["tiny"]["gan"]["steps"] = 8
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    # only the GAN and what follows it rerun
    assert _stages_run(_dvc(repo, "repro")) == {
        "gan@tiny",
        "dre@tiny",
        "synthesize@tiny",
        "student@tiny",
        "evaluate@tiny",
    }
