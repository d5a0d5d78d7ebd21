"""A temporary copy of the repository with a tiny params.yaml, for tests that run `dvc` on it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO, tiny_raw_params

BIN = Path(sys.executable).parent


def make_tiny_repo(repo: Path, *tasks: str) -> dict:
    """The pipeline code, dvc.yaml and .dvc/ of this repository in a fresh git repository `repo`,
    with a params.yaml of one tiny experiment per task; returns the params written."""
    repo.mkdir(parents=True)
    shutil.copytree(REPO / "pipeline", repo / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", repo)
    (repo / ".dvc").mkdir()
    for name in ("config", ".gitignore"):  # .gitignore: the cache and tmp stay out of git
        shutil.copy(REPO / ".dvc" / name, repo / ".dvc" / name)
    raw = tiny_raw_params(*tasks)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    return raw


def dvc(cwd: Path, *args: str) -> str:
    """Run `dvc ARGS` in `cwd` (stages import the pipeline copied there); its output, or fail."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(cwd),
        "CGANKD_PIPELINE_RUN_ID": "test-run",
    }
    out = subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def stages_run(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", log))
