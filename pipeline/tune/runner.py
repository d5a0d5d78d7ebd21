"""Running a study: storage, workers, pruning, MLflow runs, plots and the summary.

Storage: by default a journal file runs/tune/<study>/journal.log (safe for several worker
processes on one machine); any URL Optuna's RDB storage accepts (postgresql://, mysql://,
sqlite://) lets workers on many machines share one study. A study is created once and resumed
by name: `n_trials` is the number of finished (complete or pruned) trials the study should
hold, so a rerun after an interruption or a crash runs only what is missing. A worker that dies
mid-trial leaves that trial RUNNING; the next run on the same host marks it failed (its process
is gone), and RDB storages also fail trials whose heartbeat stops (other hosts).

Several processes may start the same command at once (workers here, or on other machines): the
one that creates the study sets it up (the defaults' trial, the MLflow run) while the others wait
for that; a worker starts a trial only while the study holds fewer than `n_trials` trials that
are waiting, running or finished, so the study ends with exactly `n_trials` finished ones; and
each trial draws its values from its own seed (sampler.py), so no two workers draw the same.

MLflow: one run per study ("tune/<study>", resumed with the study) holds the best params, the
defaults' objective, the gain and Optuna's plots; every trial is a run nested under it with its
params, intermediate values and objective.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.artifacts import Paths, write_json
from pipeline.errors import CgankdError, ParamsError
from pipeline.figures import save_figure
from pipeline.tune.studies import STUDIES, Options, Study

FINISHED = ("COMPLETE", "PRUNED")
LIVE = ("WAITING", "RUNNING", *FINISHED)  # trials that count towards n_trials (not failed ones)
HEARTBEAT_S = 60  # RDB storages: a trial without a heartbeat for GRACE_S is failed
GRACE_S = 180
SET_UP_WAIT_S = 60  # how long a worker waits for the process that created the study to set it up
ORPHAN_S = 10  # a trial records its worker within milliseconds of its start, or never


@dataclass(frozen=True)
class StudySpec:
    """Everything a worker needs to rebuild the study in its own process (picklable)."""

    kind: str
    experiment: str
    params_path: Path
    root: Path
    study_name: str
    storage: str | None
    options: Options = field(default_factory=Options)

    @property
    def folder(self) -> Path:
        return self.root / "runs" / "tune" / self.study_name


def make_study(spec: StudySpec) -> Study:
    from pipeline.params import load_params

    if spec.kind not in STUDIES:
        raise ParamsError(f"study {spec.kind!r}: use one of {', '.join(STUDIES)}")
    return STUDIES[spec.kind](
        load_params(spec.params_path), spec.experiment, Paths(spec.experiment, spec.root), spec.options
    )


def open_storage(spec: StudySpec):
    """The Optuna storage: a journal file (default: <study folder>/journal.log, or a path), or an RDB URL."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if spec.storage and "://" in spec.storage:
        try:
            return _rdb_storage(spec.storage)
        except Exception as err:  # a bad URL, a missing driver, a server that does not answer
            raise CgankdError(
                f"--storage {redact(spec.storage)}: cannot open ({type(err).__name__}: {str(err).splitlines()[0]})"
            ) from None
    path = Path(spec.storage) if spec.storage else spec.folder / "journal.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _rdb_storage(url: str, attempts: int = 5):
    """Optuna's RDB storage, with heartbeats. On an empty database Optuna creates its tables, and
    workers that start together race to: PostgreSQL refuses all but one (a unique violation on its
    catalogue, or "already exists"), and a retry finds the tables made."""
    import random
    import warnings

    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    from pipeline.tracking import database_url

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # the heartbeat is marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    database_url(url), heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
                )
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random())
    raise AssertionError("unreachable")


def redact(url: str) -> str:
    """A storage URL without its password (for logs and MLflow)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def _process_start(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def worker_id() -> str:
    """host:pid:start-time of this process (start time tells a reused pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid())}"


def _alive(worker: str) -> bool | None:
    """Whether a worker of this host still runs (None: another host's, cannot tell)."""
    host, pid, start = worker.rsplit(":", 2)
    if host != socket.gethostname():
        return None
    if start == "None":  # no /proc: the pid alone
        try:
            os.kill(int(pid), 0)
            return True
        except OSError:
            return False
    return _process_start(int(pid)) == start


def _age_s(trial) -> float:
    """Seconds since the trial started, by this machine's clock."""
    return (datetime.now() - trial.datetime_start).total_seconds() if trial.datetime_start else 0.0


def fail_dead_trials(study, say, shared: bool = False) -> int:
    """Mark failed the RUNNING trials whose worker process on this host is gone (killed, crashed).
    A trial records its worker as it starts; one killed before it could (within milliseconds of
    its start) is failed once it is ORPHAN_S old, unless the storage is `shared` by machines (an
    RDB storage: their clocks may differ, and the heartbeat fails such trials)."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if worker and _alive(worker) is False:
            why = f"was left running by a worker that is gone ({worker})"
        elif not worker and not shared and _age_s(t) > ORPHAN_S:
            why = "was left running by a worker that stopped as it started it"
        else:
            continue
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        _end_mlflow_run(t.user_attrs.get("mlflow_run_id"), "KILLED")
        say(f"trial {t.number} {why}: marked failed")
        n += 1
    return n


def _end_mlflow_run(run_id: str | None, status: str) -> None:
    if not run_id:
        return
    from mlflow import MlflowClient

    try:
        MlflowClient().set_terminated(run_id, status)
    except Exception:  # noqa: BLE001 - the run may live in another tracking store
        pass


def counts(study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def _sampler(seed: int):
    from pipeline.tune.sampler import TrialSeededTPE

    return TrialSeededTPE(seed)


def _pruner():
    import optuna

    # after 5 trials, from the second checkpoint on (steps are checkpoints 1, 2, 3), a trial in
    # the worst quarter of the complete ones at the same checkpoint stops. GAN objectives swing
    # several-fold between checkpoints (circle W2 at lr 5e-5 without EMA): on circle the best
    # trial had the worst value of all at the first checkpoint, and a median pruner stopped
    # every trial after the first five.
    return optuna.pruners.PercentilePruner(75.0, n_startup_trials=5, n_warmup_steps=2)


def _load(spec: StudySpec, storage, seed: int):
    import optuna

    return optuna.load_study(study_name=spec.study_name, storage=storage, sampler=_sampler(seed), pruner=_pruner())


def live(study, below: int | None = None) -> int:
    """Trials waiting, running or finished (those numbered below `below`, if given)."""
    from optuna.trial import TrialState

    states = tuple(getattr(TrialState, s) for s in LIVE)
    return sum(1 for t in study.get_trials(deepcopy=False, states=states) if below is None or t.number < below)


class Surplus(Exception):
    """A trial started when the study already held its n_trials: closed at once, without params."""


def _enough(target: int):
    """Optuna callback: stop this worker once the study holds `target` live trials (other workers'
    running ones included, so that together they start no more than `target`)."""

    def callback(study, trial) -> None:
        if live(study) >= target:
            study.stop()

    return callback


def objective_fn(spec: StudySpec, study_def: Study, parent_run_id: str, target: int):
    """The Optuna objective: one nested MLflow run per trial; NaN or an exception fails the trial.
    A trial that another worker's trial beat to the last of `target` places fails at once, as
    surplus: two workers can both see a free place just before each starts a trial."""
    import mlflow
    import optuna

    from pipeline import tracking

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker_id())
        if live(trial.study, below=trial.number) >= target:
            message = f"surplus: the study already held {target} trials when this one started"
            trial.set_user_attr("surplus", True)
            trial.set_user_attr("error", message)
            raise Surplus(message)
        values = study_def.suggest(trial)
        run = mlflow.start_run(
            run_name=f"{spec.study_name}/trial-{trial.number}",
            parent_run_id=parent_run_id,
            tags={
                "study": spec.study_name,
                "study_kind": spec.kind,
                "experiment": spec.experiment,
                "optuna_trial": str(trial.number),
                "pipeline_run_id": f"tune-{spec.study_name}",
            },
        )
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        mlflow.log_params({**values, "trial": trial.number})

        checkpoint = 0

        def report(step: int, value: float) -> None:
            """Optuna sees checkpoint 1, 2, 3 (comparable across studies); MLflow the training step."""
            nonlocal checkpoint
            checkpoint += 1
            trial.report(value, checkpoint)
            tracking.log_metrics({f"{study_def.objective}_intermediate": value}, step=step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"{study_def.objective} {value:.4g} at step {step}")

        status, state = "FAILED", "FAIL"
        try:
            value, extra = study_def.run(values, report)
            tracking.log_metrics({k: v for k, v in extra.items() if isinstance(v, (int, float)) and math.isfinite(v)})
            if math.isfinite(value):
                tracking.log_metrics({study_def.objective: value})
                status, state = "FINISHED", "COMPLETE"
            else:
                mlflow.set_tag("error", f"objective is {value}")
                trial.set_user_attr("error", f"objective is {value}")
            return value  # Optuna fails a NaN trial itself
        except optuna.TrialPruned as err:
            status, state = "FINISHED", "PRUNED"
            mlflow.set_tag("pruned", str(err))
            raise
        except KeyboardInterrupt:
            status = "KILLED"
            trial.set_user_attr("error", "interrupted")
            raise
        except Exception as err:
            if _SIGINT.is_set():  # a library turned the KeyboardInterrupt into this exception
                status = "KILLED"
                trial.set_user_attr("error", "interrupted")
                raise KeyboardInterrupt from err
            message = f"{type(err).__name__}: {err}"[:4000]
            mlflow.set_tag("error", message)
            mlflow.log_text(traceback.format_exc(), "error.txt")
            trial.set_user_attr("error", message)
            raise
        finally:
            mlflow.set_tag("optuna_state", state)
            mlflow.end_run(status)

    return objective


_SIGINT = threading.Event()


@contextmanager
def remember_sigint() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as usual and is also remembered, so that the study stops
    even when a library turns the KeyboardInterrupt into another exception, which Optuna would
    record as an ordinary failed trial before going on: Optuna's journal-file lock, interrupted
    while it waits for the lock, raises RuntimeError("did not possess lock") instead."""
    _SIGINT.clear()
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def handler(signum, frame) -> None:
        _SIGINT.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop_if_interrupted(study, trial) -> None:
    """Optuna callback: end the study after a trial during which Ctrl-C came (see remember_sigint)."""
    if _SIGINT.is_set():
        raise KeyboardInterrupt


def run_worker(
    spec: StudySpec,
    n_trials: int,
    target: int,
    timeout: float | None,
    seed: int,
    parent_run_id: str,
    threads: int | None = None,
    study_def: Study | None = None,
) -> None:
    """Run up to n_trials trials of the study in this process (stops early once the study holds
    `target` finished trials, counting other workers'). Also the entry point of spawned workers,
    which rebuild the study object from `spec` (in process, the caller's `study_def` serves)."""
    import optuna
    import torch

    from pipeline import tracking

    if threads:
        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(
        optuna.logging.ERROR
    )  # one line per trial from _print_trial instead (errors in MLflow)
    study_def = study_def or make_study(spec)
    study = _load(spec, open_storage(spec), seed)
    if live(study) >= target:  # other workers have started every trial the study needs
        return
    study_def.load()
    tracking.use_experiment(spec.experiment)
    with remember_sigint():
        study.optimize(
            objective_fn(spec, study_def, parent_run_id, target),
            n_trials=n_trials,
            timeout=timeout,
            catch=(Exception,),
            callbacks=[_print_trial, _enough(target), _stop_if_interrupted],
        )


def _print_trial(study, trial) -> None:
    from pipeline.ui import info

    value = "" if trial.value is None else f" {trial.value:.5g}"
    error = f" ({trial.user_attrs['error']})" if "error" in trial.user_attrs else ""
    info(f"[{study.study_name}] trial {trial.number}: {trial.state.name}{value} {trial.params}{error}")


def _spawned(args: tuple) -> None:
    try:
        run_worker(*args)
    except KeyboardInterrupt:
        pass


def _study_run(spec: StudySpec, study, study_def: Study) -> str:
    """The MLflow run of the study: the one recorded in the study if it still exists, else a new one."""
    from mlflow import MlflowClient

    from pipeline import tracking

    client = MlflowClient(tracking.tracking_uri())
    run_id = study.user_attrs.get("mlflow_run_id")
    if run_id:
        try:
            client.get_run(run_id)
            client.update_run(run_id, status="RUNNING")
            return run_id
        except Exception:  # noqa: BLE001 - another tracking store: start a run here
            pass
    run = client.create_run(
        tracking.use_experiment(spec.experiment),
        run_name=f"tune/{spec.study_name}",
        tags={
            "study": spec.study_name,
            "study_kind": spec.kind,
            "experiment": spec.experiment,
            "stage": "tune",
            "git_commit": tracking.git_commit(),
            "pipeline_run_id": f"tune-{spec.study_name}",
        },
    )
    for k, v in {
        "study_kind": spec.kind,
        "objective": study_def.objective,
        "direction": study_def.direction,
        "storage": redact(spec.storage) if spec.storage else "journal file (default)",
        **study.user_attrs.get("options", {}),
    }.items():
        client.log_param(run.info.run_id, k, str(v))
    if not run_id:  # a run in another tracking store (another machine's) stays the study's
        study.set_user_attr("mlflow_run_id", run.info.run_id)
    return run.info.run_id


def _open_study(spec: StudySpec, storage, study_def: Study, say):
    """Create the study and set it up, or load it; when another process has just created it, wait
    until that one has set it up (so that the defaults are queued once, and the study has one
    MLflow run). Raises ParamsError if the name is taken by another kind of study."""
    import optuna

    seed = study_def.params.seed
    try:
        study = optuna.create_study(
            study_name=spec.study_name,
            storage=storage,
            direction=study_def.direction,
            sampler=_sampler(seed),
            pruner=_pruner(),
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = _load(spec, storage, seed)
        _wait_for_set_up(spec, study, say)
        if "kind" not in study.user_attrs:  # its creator died before setting it up
            _set_up(spec, study, study_def)
    else:
        _set_up(spec, study, study_def)
    what = {"kind": spec.kind, "experiment": spec.experiment}
    if {k: study.user_attrs.get(k) for k in what} != what:
        old = study.user_attrs
        raise ParamsError(
            f"--study-name {spec.study_name}: that study is a {old['kind']} study of {old['experiment']}; "
            "choose another name"
        )
    if study.direction.name.lower() != study_def.direction:
        raise ParamsError(
            f"--study-name {spec.study_name}: that study {study.direction.name.lower()}s; choose another name"
        )
    return study


def _set_up(spec: StudySpec, study, study_def: Study) -> None:
    """A new study: its settings, the defaults' trial first in the queue, its MLflow run; `kind`
    goes last, as the sign that the study is ready for other workers."""
    study.set_user_attr("set_up_by", worker_id())
    study.set_user_attr("objective", study_def.objective)
    study.set_user_attr("options", {k: v for k, v in vars(spec.options).items() if v not in (None, False)})
    defaults = study_def.defaults()
    study.set_user_attr("defaults", defaults)
    study.enqueue_trial(defaults, user_attrs={"defaults": True})
    _study_run(spec, study, study_def)
    study.set_user_attr("experiment", spec.experiment)
    study.set_user_attr("kind", spec.kind)


def _wait_for_set_up(spec: StudySpec, study, say) -> None:
    """Wait (up to SET_UP_WAIT_S) while the process that created the study sets it up."""
    end, said = time.monotonic() + SET_UP_WAIT_S, False
    while "kind" not in study.user_attrs and time.monotonic() < end:
        creator = study.user_attrs.get("set_up_by")
        if creator and _alive(creator) is False:
            return
        if not said:
            say(f"study {spec.study_name}: waiting for the worker that created it to set it up")
            said = True
        time.sleep(0.5)


def _wait_for_other_workers(spec: StudySpec, storage, say) -> None:
    """Wait until the trials that other processes run in the study have finished, so that the
    summary covers the whole study. Trials of a worker that is gone are failed (on this host by
    process, elsewhere by the RDB heartbeat); a journal file cannot tell about other hosts."""
    import warnings

    import optuna
    from optuna.trial import TrialState

    shared = isinstance(storage, optuna.storages.RDBStorage)

    def followed(trial) -> bool:
        worker = trial.user_attrs.get("worker")
        if not worker:  # just started (its worker is recorded next), or orphaned
            return _age_s(trial) < ORPHAN_S
        alive = _alive(worker)
        return alive is True or (alive is None and shared)  # another host's: the heartbeat tells

    study, said = optuna.load_study(study_name=spec.study_name, storage=storage), False
    while True:
        fail_dead_trials(study, say, shared)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if followed(t)]
        if not running:
            return
        if not said:
            say(f"study {spec.study_name}: waiting for {len(running)} trial(s) running in other workers")
            said = True
        time.sleep(1.0)


def optimize(spec: StudySpec, *, n_trials: int, timeout: float | None = None, workers: int = 1, say=print) -> dict:
    """Create or resume the study, run the missing trials (in `workers` processes), then write the
    summary (best params, defaults' objective, gain), the plots and the study's MLflow run."""
    import multiprocessing

    import optuna

    study_def = make_study(spec)
    storage = open_storage(spec)
    seed = study_def.params.seed
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = _open_study(spec, storage, study_def, say)
    parent = _study_run(spec, study, study_def)
    shared = isinstance(storage, optuna.storages.RDBStorage)
    fail_dead_trials(study, say, shared)
    done = sum(counts(study).get(s, 0) for s in FINISHED)
    missing = max(0, n_trials - done)
    say(
        f"study {spec.study_name} ({spec.kind} on {spec.experiment}, {study_def.direction} {study_def.objective}): "
        f"{done} finished trial(s), running {missing} more"
        + (f" in {workers} workers" if workers > 1 and missing else "")
    )
    interrupted = False
    start = time.monotonic()
    try:
        if missing and workers <= 1:
            run_worker(spec, missing, n_trials, timeout, seed, parent, study_def=study_def)
        elif missing:
            ctx = multiprocessing.get_context("spawn")
            shares = [missing // workers + (i < missing % workers) for i in range(workers)]
            threads = max(1, (os.cpu_count() or 1) // workers)
            procs = [
                ctx.Process(target=_spawned, args=((spec, k, n_trials, timeout, seed, parent, threads),))
                for k in shares
                if k
            ]
            for p in procs:
                p.start()
            try:
                for p in procs:
                    p.join()
            except KeyboardInterrupt:  # Ctrl-C reaches the workers too: let them mark their trials failed
                for p in procs:
                    p.join(timeout=30)
                raise
            bad = [p.exitcode for p in procs if p.exitcode]
            if bad:
                say(
                    f"{len(bad)} worker(s) ended abnormally (exit codes {bad}); their running trials are "
                    "marked failed on the next run"
                )
        if timeout is None or time.monotonic() - start < timeout:
            _wait_for_other_workers(spec, storage, say)
    except KeyboardInterrupt:
        interrupted = True
    elapsed = time.monotonic() - start
    study = optuna.load_study(study_name=spec.study_name, storage=storage)
    fail_dead_trials(study, say, shared)  # spawned workers that died
    summary = summarise(study, study_def, elapsed)
    _finish_mlflow(spec, parent, study, summary, interrupted)
    if interrupted:
        raise KeyboardInterrupt
    return summary


def summarise(study, study_def: Study, elapsed: float) -> dict:
    """Best trial vs the defaults' trial (the study's first), and the trial counts."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    default = next((t for t in complete if t.user_attrs.get("defaults")), None)
    out: dict[str, Any] = {
        "study": study.study_name,
        "kind": study.user_attrs.get("kind"),
        "experiment": study.user_attrs.get("experiment"),
        "objective": study_def.objective,
        "direction": study_def.direction,
        "trials": counts(study),
        "wall_time_s_this_run": round(elapsed, 1),
        "defaults": study.user_attrs.get("defaults"),
        "default_value": default.value if default else None,
    }
    if complete:
        best = study.best_trial
        out |= {"best_trial": best.number, "best_params": best.params, "best_value": best.value}
        if default is not None:
            sign = 1 if study_def.direction == "maximize" else -1
            out["gain"] = sign * (best.value - default.value)  # > 0: better than the defaults
    return out


def _finish_mlflow(spec: StudySpec, parent: str, study, summary: dict, interrupted: bool) -> None:
    from mlflow import MlflowClient

    from pipeline import tracking

    folder = spec.folder
    write_json(folder / "summary.json", summary)
    plots = save_plots(study, folder / "plots")
    client = MlflowClient(tracking.tracking_uri())
    for k in ("best_value", "default_value", "gain"):
        if summary.get(k) is not None:
            client.log_metric(parent, k, float(summary[k]))
    for k, v in summary.get("best_params", {}).items():
        try:
            client.log_param(parent, f"best.{k}", str(v))
        except Exception:  # noqa: BLE001 - a resumed study's best may change; MLflow params are write-once
            client.set_tag(parent, f"best.{k}", str(v))
    client.log_artifact(parent, str(folder / "summary.json"))
    for p in plots:
        client.log_artifact(parent, str(p), "plots")
    client.set_terminated(parent, "KILLED" if interrupted else "FINISHED")


def save_plots(study, folder: Path) -> list[Path]:
    """Optuna's optimization history, intermediate values, param importances and slice plots as PNGs
    (a plot that needs more finished trials than there are is skipped)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as ov

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, plot in (
        ("optimization_history", ov.plot_optimization_history),
        ("intermediate_values", ov.plot_intermediate_values),
        ("param_importances", ov.plot_param_importances),
        ("slice", ov.plot_slice),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = plot(study)
        except Exception:  # noqa: BLE001 - e.g. importances need two complete trials
            continue
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        path = folder / f"{name}.png"
        save_figure(fig, path, bbox_inches="tight")
        out.append(path)
    return out


def summary_text(summary: dict) -> str:
    t = summary["trials"]
    lines = [
        f"study {summary['study']}: {summary['kind']} on {summary['experiment']}, {summary['direction']} "
        f"{summary['objective']}",
        "trials: "
        + ", ".join(f"{v} {k.lower()}" for k, v in sorted(t.items()))
        + f" ({summary['wall_time_s_this_run']:.0f} s this run)",
    ]
    if "best_params" in summary:
        defaults = summary.get("defaults") or {}
        lines.append(f"| param | default | best (trial {summary['best_trial']}) |")
        lines.append("|---|---|---|")
        lines += [f"| {k} | {_fmt(defaults.get(k))} | {_fmt(v)} |" for k, v in summary["best_params"].items()]
        lines.append(
            f"| {summary['objective']} | {_fmt(summary.get('default_value'))} | {_fmt(summary['best_value'])} |"
        )
        if summary.get("gain") is not None:
            lines.append(
                f"gain over the defaults: {summary['gain']:.4g} "
                f"({'higher' if summary['direction'] == 'maximize' else 'lower'} is better)"
            )
    else:
        lines.append("no complete trial yet")
    return "\n".join(lines)


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)
