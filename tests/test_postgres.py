"""The engines of a multi-machine set-up, for real: a throw-away PostgreSQL server (pgserver) holds
an Optuna study that two separate `cgankd tune` processes share and the store of an `mlflow server`
that stage runs log to over HTTP; `optuna-dashboard` opens the project's studies (journal file and
PostgreSQL)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from tests.conftest import build_experiment, tiny_raw_params

BIN = Path(sys.executable).parent
runner = CliRunner()
N_TRIALS = 6
STAGES = ["prepare", "teacher", "evalnets", "gan", "features", "dre", "synthesize", "student", "evaluate"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _serve(cmd: list[str], ready_url: str, log: Path, timeout: float = 120) -> Iterator[subprocess.Popen]:
    """Start a server process (its own process group), wait until `ready_url` answers 200, and
    stop the whole group afterwards."""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        end = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{cmd[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > end:
                raise AssertionError(f"{ready_url} did not answer in {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


@dataclass
class Postgres:
    server: object

    def database(self, name: str) -> str:
        """A new database on the server; its URL as pgserver gives it (postgresql://, unix socket)."""
        self.server.psql(f"CREATE DATABASE {name};")
        return self.server.get_uri(name)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory) -> Iterator[Postgres]:
    pgserver = pytest.importorskip("pgserver", reason="pgserver (dev dependency) is not installed")
    folder = tmp_path_factory.mktemp("pgdata")
    try:
        server = pgserver.get_server(folder, cleanup_mode="stop")
    except Exception as err:  # noqa: BLE001 - no PostgreSQL binaries for this platform, no permission, ...
        pytest.skip(f"pgserver could not start a PostgreSQL server: {type(err).__name__}: {err}")
    try:
        yield Postgres(server)
    finally:
        server.cleanup()


def psycopg2_url(url: str) -> str:
    """What tools outside cgankd need: SQLAlchemy 2.1's default PostgreSQL driver is psycopg 3,
    the environment has psycopg2."""
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


@dataclass
class TrackingServer:
    url: str
    database: str
    artifacts: Path


@pytest.fixture(scope="module")
def tracking_server(postgres, tmp_path_factory) -> Iterator[TrackingServer]:
    """`mlflow server` with its runs in PostgreSQL and artifacts proxied into a folder."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    database = psycopg2_url(postgres.database("mlflow"))
    artifacts = folder / "artifacts"
    port = _free_port()
    cmd = [str(BIN / "mlflow"), "server", "--backend-store-uri", database, "--artifacts-destination", str(artifacts)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    url = f"http://127.0.0.1:{port}"
    with _serve(cmd, f"{url}/health", folder / "server.log"):
        yield TrackingServer(url, database, artifacts)


@dataclass
class SharedStudy:
    storage: str  # as given to `cgankd tune`
    params: Path
    roots: list[Path]
    outputs: list[str]


@pytest.fixture(scope="module")
def shared_study(postgres, tracking_server, tmp_path_factory) -> SharedStudy:
    """Two `cgankd tune` processes, each with its own checkout (as on two machines), run one study
    on one PostgreSQL database, logging to one tracking server."""
    tmp = tmp_path_factory.mktemp("tune")
    params, root = build_experiment(tmp, "circle", "tiny_circle", ["prepare", "embed"])
    other = tmp / "machine2"
    shutil.copytree(root, other)
    storage = postgres.database("optuna")
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_server.url}
    procs = [
        subprocess.Popen(
            [str(BIN / "cgankd"), "tune", "vicinity", "-e", "tiny_circle", "--variant", "hvdl"]
            + ["--n-trials", str(N_TRIALS), "--storage", storage, "--study-name", "shared"]
            + ["-p", str(params), "--root", str(r)],
            cwd=r,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        for r in (root, other)
    ]
    try:
        outputs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0 and "Traceback" not in out and "View run" not in out, out
    return SharedStudy(storage, params, [root, other], outputs)


@pytest.mark.slow
def test_two_tune_processes_share_one_study_on_postgresql(shared_study, tracking_server):
    import optuna
    from mlflow import MlflowClient

    from pipeline.gan.vicinal import rule_of_thumb

    study = optuna.load_study(study_name="shared", storage=psycopg2_url(shared_study.storage))
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    assert [t.number for t in trials] == list(range(len(trials)))  # none lost, none duplicated
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == N_TRIALS  # as many as asked for, not one per process
    # a trial that two workers started at once past the last slot is closed at once, without params
    surplus = [t for t in trials if t not in finished]
    assert all(t.state.name == "FAIL" and "surplus" in t.user_attrs and not t.params for t in surplus), surplus
    assert len(surplus) <= 1
    # both processes worked, each on its own trials
    workers = {t.user_attrs["worker"] for t in finished}
    assert len(workers) == 2, [t.user_attrs for t in finished]
    # the defaults ran once, and no two trials drew the same values
    defaults = [t for t in finished if t.user_attrs.get("defaults")]
    assert len(defaults) == 1 and defaults[0].number == 0
    from pipeline.data import load_dataset

    ds = load_dataset(shared_study.roots[0] / "data" / "tiny_circle" / "prepared")
    sigma, _, _ = rule_of_thumb(ds.normalise(ds.y_train), 2.0, 1 / 12)
    assert defaults[0].params == pytest.approx({"gan.sigma": sigma, "gan.m_kappa": 2.0})
    drawn = {tuple(sorted(t.params.items())) for t in finished}
    assert len(drawn) == N_TRIALS
    # both summaries agree with the database
    for root, out in zip(shared_study.roots, shared_study.outputs):
        summary = json.loads((root / "runs" / "tune" / "shared" / "summary.json").read_text())
        assert summary["best_value"] == study.best_value, out
    # MLflow: one study run on the tracking server, one nested run per trial that ran
    client = MlflowClient(tracking_server.url)
    runs = client.search_runs(
        [client.get_experiment_by_name("cgankd/tiny_circle").experiment_id], "tags.study = 'shared'"
    )
    parents = [r for r in runs if r.data.tags.get("stage") == "tune"]
    assert len(parents) == 1
    children = {r.data.tags["optuna_trial"]: r for r in runs if r.data.tags.get("mlflow.parentRunId")}
    assert sorted(map(int, children)) == [t.number for t in trials if t not in surplus]
    assert all(children[str(t.number)].info.run_id == t.user_attrs["mlflow_run_id"] for t in finished)
    assert {a.path for a in client.list_artifacts(parents[0].info.run_id)} >= {"summary.json", "plots"}


@pytest.mark.slow
def test_stage_runs_go_to_a_tracking_server_backed_by_postgresql(tracking_server, tmp_path, monkeypatch):
    import mlflow
    import sqlalchemy
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    monkeypatch.setenv("CGANKD_PIPELINE_RUN_ID", "on-the-server")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_raw_params(), sort_keys=False))
    root = tmp_path / "repo"
    for stage in STAGES:
        result = runner.invoke(app, [stage, "-e", "tiny", "-p", str(params), "--root", str(root)])
        assert result.exit_code == 0, (stage, result.output)

    client = MlflowClient(tracking_server.url)
    experiment = client.get_experiment_by_name("cgankd/tiny")
    assert experiment is not None and experiment.artifact_location.startswith("mlflow-artifacts:")
    runs = client.search_runs([experiment.experiment_id], "tags.pipeline_run_id = 'on-the-server'")
    top = {r.data.tags["stage"]: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    logged = [s for s in STAGES if s != "prepare"]  # prepare only writes files
    assert sorted(top) == sorted(logged) and len(top) == sum("mlflow.parentRunId" not in r.data.tags for r in runs)
    for stage, run in top.items():
        assert run.info.status == "FINISHED" and run.data.tags["experiment"] == "tiny", stage
        assert run.data.tags["git_commit"] and run.data.params, stage
    # the students: nested under the student stage's run, tagged with their KD method and data
    students = json.loads((root / "metrics" / "tiny" / "students.json").read_text())
    nested = {r.info.run_name.removeprefix("student/"): r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert sorted(nested) == sorted(students)
    for name, run in nested.items():
        assert run.data.tags["mlflow.parentRunId"] == top["student"].info.run_id
        assert run.data.tags["stage"] == "student" and {"method", "data"} <= set(run.data.tags)
        assert run.data.metrics["test_accuracy"] == pytest.approx(students[name]["test_accuracy"])
    assert {r.data.tags["data"] for r in nested.values()} >= {"real_only"}
    # artifacts went through the server into its artifact store, and come back byte for byte
    evaluate = top["evaluate"].info.run_id
    names = [a.path for a in client.list_artifacts(evaluate)]
    assert "tiny.md" in names, names
    local = Path(
        mlflow.artifacts.download_artifacts(
            run_id=evaluate, artifact_path="tiny.md", dst_path=str(tmp_path), tracking_uri=tracking_server.url
        )
    )
    assert local.read_bytes() == (root / "metrics" / "tiny.md").read_bytes()
    assert any(p.name == "tiny.md" for p in tracking_server.artifacts.rglob("*"))
    # and the runs themselves are rows of the PostgreSQL database
    engine = sqlalchemy.create_engine(tracking_server.database)
    try:
        with engine.connect() as conn:
            stored = conn.execute(
                sqlalchemy.text("SELECT run_uuid FROM runs WHERE experiment_id = :e"),
                {"e": int(experiment.experiment_id)},
            ).scalars()
            assert {r.info.run_id for r in runs} <= set(stored)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_optuna_dashboard_opens_journal_and_postgresql_studies(shared_study, tmp_path):
    root = shared_study.roots[0]
    result = runner.invoke(
        app,
        ["tune", "vicinity", "-e", "tiny_circle", "--variant", "hvdl", "--n-trials", "2", "--study-name", "on-journal"]
        + ["-p", str(shared_study.params), "--root", str(root)],
    )
    assert result.exit_code == 0, result.output
    journal = root / "runs" / "tune" / "on-journal" / "journal.log"  # the default storage
    for storage, name, n in (
        (str(journal), "on-journal", 2),
        (psycopg2_url(shared_study.storage), "shared", N_TRIALS),
    ):
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [str(BIN / "optuna-dashboard"), storage, "--host", "127.0.0.1", "--port", str(port), "--quiet"]
        with _serve(cmd, f"{base}/api/studies", tmp_path / f"dashboard-{name}.log"):
            listed = _get(f"{base}/api/studies")["study_summaries"]
            assert [s["study_name"] for s in listed] == [name]
            assert listed[0]["user_attrs"], listed  # the study's kind, experiment, defaults
            detail = _get(f"{base}/api/studies/{listed[0]['study_id']}")
            states = [t["state"] for t in detail["trials"]]
            assert sum(s in ("Complete", "Pruned") for s in states) == n, states
            assert detail["best_trials"], detail


def test_a_plain_postgresql_url_gets_the_installed_driver(monkeypatch):
    """SQLAlchemy 2.1 reads postgresql:// as psycopg 3; cgankd installs psycopg2."""
    import importlib.util

    from pipeline.tracking import database_url, tracking_uri

    assert importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None
    assert database_url("postgresql://me:pw@db.lab:5432/optuna") == "postgresql+psycopg2://me:pw@db.lab:5432/optuna"
    for kept in ("postgresql+psycopg2://me@db/x", "mysql://me@db/x", "sqlite:///x.db", "http://127.0.0.1:5000"):
        assert database_url(kept) == kept
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://me@/mlflow?host=/tmp")
    assert tracking_uri() == "postgresql+psycopg2://me@/mlflow?host=/tmp"
