"""A DVC remote: the outputs of one `dvc repro`, pushed from one clone and pulled into another,
leave nothing to rerun there."""

import re
import subprocess
from pathlib import Path

import pytest

from tests.tiny_repo import dvc, make_tiny_repo, stages_run


def _git(cwd: Path, *args: str) -> str:
    ident = ["-c", "user.name=test", "-c", "user.email=test@example.com"]
    out = subprocess.run(["git", *ident, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _count(pattern: str, log: str) -> int:
    found = re.search(pattern, log)
    assert found, log
    return int(found.group(1))


def _files(root: Path, *folders: str) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for folder in folders
        for p in sorted((root / folder).rglob("*"))
        if p.is_file()
    }


# 1-2 min (9 stage processes of one tiny experiment, then push, clone, pull, status, repro)
@pytest.mark.slow
def test_push_then_pull_into_a_fresh_clone_restores_the_pipeline_without_rerunning(tmp_path):
    repo = tmp_path / "repo"
    make_tiny_repo(repo, "classification")
    assert len(stages_run(dvc(repo, "repro"))) == 9  # the classification chain, evalnets included
    remote = tmp_path / "remote"
    dvc(repo, "remote", "add", "-d", "local", str(remote))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "tiny pipeline")
    assert "local" in _git(repo, "show", "HEAD:.dvc/config")  # the remote travels with the repository
    tracked = _git(repo, "ls-files", "data", "models").split()
    assert tracked and all(Path(f).name == ".gitignore" for f in tracked)  # DVC's outputs are not in git
    pushed = _count(r"(\d+) files? pushed", dvc(repo, "push"))
    assert pushed > 0 and sum(p.is_file() for p in remote.rglob("*")) == pushed

    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(repo), str(clone))
    assert not list(clone.glob("models/**/*.pt"))  # only what git holds
    assert _count(r"(\d+) files? fetched", dvc(clone, "pull")) == pushed
    assert "Data and pipelines are up to date." in dvc(clone, "status")  # no stage would rerun
    assert stages_run(dvc(clone, "repro")) == set()
    here, there = _files(repo, "data", "models", "metrics"), _files(clone, "data", "models", "metrics")
    assert sorted(there) == sorted(here) and any(k.startswith("models/tiny/") for k in here)
    assert [k for k in here if here[k] != there[k]] == []
