"""`cgankd gan --nproc 2` under torchrun: one rank killed mid-run, the stage resumes from rank 0's
last checkpoint, with the same number of processes (then the result is the uninterrupted run's,
bit for bit) or with a different one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import tiny_raw_params

pytestmark = pytest.mark.slow

CGANKD = [sys.executable, "-m", "pipeline"]


def _repo(path: Path) -> Path:
    path.mkdir()
    raw = tiny_raw_params("classification")
    raw["experiments"]["tiny"]["gan"].update(steps=150, checkpoint_every=10, log_every=10)
    (path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    subprocess.run([*CGANKD, "prepare", "-e", "tiny"], cwd=path, check=True, capture_output=True)
    return path


def _gan(path: Path, nproc: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CGANKD, "gan", "-e", "tiny", "--nproc", str(nproc)], cwd=path, capture_output=True, text=True
    )


def _kill_rank_1_after_a_checkpoint(path: Path) -> subprocess.CompletedProcess:
    import psutil

    ckpt = path / "models/tiny/gan/cgan.pt"
    proc = subprocess.Popen(
        [*CGANKD, "gan", "-e", "tiny", "--nproc", "2"], cwd=path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while not ckpt.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.05)
    workers = [
        p for p in psutil.Process(proc.pid).children(recursive=True) if p.environ().get("RANK") == "1"
    ]  # the torchrun worker of rank 1
    assert len(workers) == 1
    os.kill(workers[0].pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), "")


def _state(path: Path) -> dict:
    from pipeline.checkpoint import load_checkpoint

    return load_checkpoint(path / "models/tiny/gan/cgan.pt")["state"]


def test_a_killed_rank_resumes_from_the_last_checkpoint(tmp_path: Path) -> None:
    whole = _repo(tmp_path / "whole")
    assert _gan(whole, 2).returncode == 0

    killed = _repo(tmp_path / "killed")
    run = _kill_rank_1_after_a_checkpoint(killed)
    assert run.returncode != 0
    assert "failed under torchrun with 2 processes" in run.stdout
    stopped_at = _state(killed)["step"]
    assert 0 < stopped_at < 150

    resumed = _gan(killed, 2)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from step {stopped_at} of 150" in resumed.stderr
    a, b = _state(whole), _state(killed)
    assert b["step"] == 150 and a["history"] == b["history"]
    for net in ("G", "D", "G_ema"):
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), f"{net}.{key}"


def test_resume_with_another_number_of_processes(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    run = _kill_rank_1_after_a_checkpoint(repo)
    assert run.returncode != 0
    stopped_at = _state(repo)["step"]
    resumed = _gan(repo, 1)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from step {stopped_at} of 150" in resumed.stderr
    assert _state(repo)["step"] == 150
