"""MLflow helpers: one MLflow run per stage run, tagged so runs of one `dvc repro` group together.

Tracking URI: $MLFLOW_TRACKING_URI, else SQLite at mlruns/mlflow.db with artifacts under
mlruns/artifacts (MLflow 3 deprecates the plain ./mlruns file store). A tracking server
(http://host:5000) is what several machines share; a plain postgresql:// URL is given the
installed driver (database_url).
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pipeline.runtime import is_main

MLRUNS = Path("mlruns")


def database_url(url: str) -> str:
    """A SQLAlchemy URL that names the PostgreSQL driver when it does not: SQLAlchemy 2.1's default
    for postgresql:// is psycopg 3, while psycopg2 is the one installed with cgankd."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        if importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return database_url(uri)
    MLRUNS.mkdir(exist_ok=True)
    return f"sqlite:///{(MLRUNS / 'mlflow.db').resolve()}"


def _artifact_location(uri: str) -> str | None:
    """Artifacts of a SQLite store go to artifacts/ beside the database; a server decides its own."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    return None


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _dvc_ancestor() -> str | None:
    """pid and start time of the nearest `dvc` process above us (Linux /proc), if any."""
    pid = os.getppid()
    for _ in range(8):
        proc = Path(f"/proc/{pid}")
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        if any(Path(part.decode(errors="ignore")).name == "dvc" for part in cmd[:2]):
            return f"dvc-{pid}-{fields[19]}"
        pid = int(fields[1])
        if pid <= 1:
            return None
    return None


_RUN_ID: ContextVar[str | None] = ContextVar("pipeline_run_id", default=None)


@contextmanager
def pipeline_run(run_id: str) -> Iterator[None]:
    """Stage runs inside the block share `run_id` (in-process pipelines such as `cgankd seeds`);
    the environment is left as it was."""
    token = _RUN_ID.set(run_id)
    try:
        yield
    finally:
        _RUN_ID.reset(token)


def pipeline_run_id() -> str:
    """Shared by all stages of one pipeline run: the enclosing `pipeline_run` block's id, else
    $CGANKD_PIPELINE_RUN_ID, else derived from the dvc process that runs the stages (one
    `dvc repro`), else a fresh id for a stage run on its own."""
    return (
        _RUN_ID.get()
        or os.environ.get("CGANKD_PIPELINE_RUN_ID")
        or _dvc_ancestor()
        or f"single-{uuid.uuid4().hex[:12]}"
    )


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def use_experiment(experiment: str) -> str:
    """Point MLflow at the tracking URI and make the MLflow experiment `cgankd/<experiment>` (created
    with artifacts beside a SQLite store) the active one; returns its id."""
    import mlflow
    from mlflow.exceptions import MlflowException

    # against a tracking server MLflow prints two "View run ... at: URL" lines per run to stdout
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    mlflow.set_tracking_uri(tracking_uri())
    name = f"cgankd/{experiment}"
    if mlflow.get_experiment_by_name(name) is None:
        try:
            mlflow.create_experiment(name, artifact_location=_artifact_location(mlflow.get_tracking_uri()))
        except MlflowException:  # another process (worker, machine) created it first
            if mlflow.get_experiment_by_name(name) is None:
                raise
    return mlflow.set_experiment(name).experiment_id


@contextmanager
def stage_run(
    experiment: str,
    stage: str,
    params: Mapping[str, Any],
    run_name: str | None = None,
    nested: bool = False,
    tags: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    """Start an MLflow run for one stage of one experiment, with params and tags logged (`tags`:
    more of them, e.g. a student's KD method and data, for sorting runs in `mlflow ui`). Under
    torchrun only rank 0 tracks: the other ranks get None and every log_* call is a no-op there."""
    if not is_main():
        yield None
        return
    import mlflow

    use_experiment(experiment)
    tags = {
        "git_commit": git_commit(),
        "experiment": experiment,
        "stage": stage,
        "pipeline_run_id": pipeline_run_id(),
        **(tags or {}),
    }
    with mlflow.start_run(run_name=run_name or stage, nested=nested, tags=tags) as run:
        mlflow.log_params({k: str(v) for k, v in flatten(params).items()})
        yield run


def log_history(history: list[dict[str, float]], prefix: str = "") -> None:
    """Per-step metrics; each record holds a 'step' key."""
    if not is_main():
        return
    import mlflow

    for rec in history:
        step = int(rec["step"])
        mlflow.log_metrics({f"{prefix}{k}": v for k, v in rec.items() if k != "step"}, step=step)


def metric_name(name: str) -> str:
    """MLflow's allowed characters: others (e.g. the "+" of "cgan+cdre") become "-"."""
    return re.sub(r"[^\w\-. :/]", "-", name)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    if not is_main():
        return
    import mlflow

    mlflow.log_metrics({metric_name(k): v for k, v in metrics.items()}, step=step)


def log_artifact(path: Path, artifact_path: str | None = None) -> None:
    if not is_main():
        return
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=artifact_path)


def stage_times(pipeline_run: str | None = None) -> tuple[str, list[tuple[str, str, float]]] | None:
    """(pipeline run id, [(experiment, stage, seconds)] in the order they started) of the stage runs
    of one pipeline run (default: the newest one): each stage's wall time inside its MLflow run,
    not counting the start of its process. None when nothing has been tracked."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    names = [e.name for e in mlflow.search_experiments() if e.name.startswith("cgankd/")]
    if not names:
        return None
    if pipeline_run is None:
        newest = mlflow.search_runs(
            experiment_names=names,
            filter_string="attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
            output_format="list",
        )
        if not newest:
            return None
        pipeline_run = newest[0].data.tags.get("pipeline_run_id", "")
    runs = mlflow.search_runs(
        experiment_names=names,
        filter_string=f"tags.pipeline_run_id = '{pipeline_run}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )
    return pipeline_run, [
        (r.data.tags["experiment"], r.data.tags["stage"], (r.info.end_time - r.info.start_time) / 1000)
        for r in runs
        if "mlflow.parentRunId" not in r.data.tags  # a stage's own run, not the students nested in it
    ]
