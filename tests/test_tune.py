"""Optuna studies from the CLI (`cgankd tune`): tiny studies of each kind, workers sharing a
storage, a killed worker and a resume, --apply, failing trials."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from tests.conftest import build_experiment, tiny_raw_params

runner = CliRunner()
CLASS_STAGES = ["prepare", "teacher", "gan", "features", "dre"]
CIRCLE_STAGES = ["prepare", "embed"]  # a vicinity trial trains its own GAN


@pytest.fixture(scope="module")
def tiny_class(tmp_path_factory):
    return build_experiment(tmp_path_factory.mktemp("class"), "classification", "tiny", CLASS_STAGES)


@pytest.fixture(scope="module")
def tiny_circle(tmp_path_factory):
    # enough GAN steps that a trial lasts long enough to be interrupted in the kill test
    return build_experiment(
        tmp_path_factory.mktemp("circle"), "circle", "tiny_circle", CIRCLE_STAGES, steps=200, log_every=10
    )


def _tune(params: Path, root: Path, *args: str):
    return runner.invoke(app, ["tune", *args, "-p", str(params), "--root", str(root)])


def _study(root: Path, name: str) -> optuna.Study:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(root / "runs" / "tune" / name / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage)


def _states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in sorted(study.get_trials(), key=lambda t: t.number)]


def _mlflow_children(study_name: str) -> list:
    import mlflow

    from pipeline import tracking

    mlflow.set_tracking_uri(tracking.tracking_uri())
    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string=f"tags.study = '{study_name}'", output_format="list"
    )
    parents = [r for r in runs if r.data.tags.get("stage") == "tune"]
    assert len(parents) == 1, "one MLflow run per study"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return parents[0], children


def test_n_fake_study_reuses_the_pipeline_and_logs_every_trial(tiny_class):
    params, root = tiny_class
    before = params.read_bytes()
    result = _tune(params, root, "n-fake", "-e", "tiny", "--n-trials", "3")
    assert result.exit_code == 0, result.output
    study = _study(root, "tiny-n-fake")
    assert _states(study) == ["COMPLETE"] * 3
    first = study.trials[0]
    assert first.params == {"synthesize.n_fake_per_class": 10} and first.user_attrs["defaults"]  # the defaults go first
    assert all(0 <= t.value <= 1 for t in study.trials)  # a validation accuracy
    summary = yaml.safe_load((root / "runs" / "tune" / "tiny-n-fake" / "summary.json").read_text())
    assert summary["default_value"] == first.value and summary["best_value"] == max(t.value for t in study.trials)
    assert summary["gain"] == pytest.approx(summary["best_value"] - first.value)
    assert "| synthesize.n_fake_per_class | 10 |" in result.output and "gain over the defaults" in result.output
    assert (root / "runs" / "tune" / "tiny-n-fake" / "plots" / "optimization_history.png").stat().st_size > 0
    assert (root / "runs" / "tune" / "tiny-n-fake" / "plots" / "slice.png").exists()
    parent, children = _mlflow_children("tiny-n-fake")
    assert sorted(int(r.data.tags["optuna_trial"]) for r in children) == [0, 1, 2]
    assert all(r.info.status == "FINISHED" and "student_val_accuracy" in r.data.metrics for r in children)
    assert {c.data.params["synthesize.n_fake_per_class"] for c in children} == {
        str(t.params["synthesize.n_fake_per_class"]) for t in study.trials
    }
    assert parent.info.status == "FINISHED" and parent.data.metrics["best_value"] == summary["best_value"]
    assert params.read_bytes() == before  # no --apply: params untouched
    # the teacher, GAN and ratio nets were reused, not retrained
    assert not (root / "runs" / "tune" / "tiny-n-fake" / "models").exists()

    # the same name resumes: asking for 4 trials runs one more
    result = _tune(params, root, "n-fake", "-e", "tiny", "--n-trials", "4")
    assert result.exit_code == 0, result.output
    assert "3 finished trial(s), running 1 more" in result.output
    assert _states(_study(root, "tiny-n-fake")) == ["COMPLETE"] * 4
    assert len(_mlflow_children("tiny-n-fake")[1]) == 4


def test_apply_changes_exactly_the_tuned_keys(tiny_class, tmp_path):
    params, root = tiny_class
    mine = tmp_path / "params.yaml"
    text = "# my comment\n" + params.read_text().replace("  tiny:\n", "  tiny:   # the tiny one\n")
    mine.write_text(text)
    result = _tune(
        mine, root, "n-fake", "-e", "tiny", "--n-trials", "2", "--rho", "--study-name", "apply-test", "--apply"
    )
    assert result.exit_code == 0, result.output
    best = _study(root, "apply-test").best_params
    old, new = text.splitlines(), mine.read_text().splitlines()
    assert len(old) == len(new)
    changed = [(a, b) for a, b in zip(old, new) if a != b]
    assert {b.split(":")[0].strip() for _, b in changed} <= {"n_fake_per_class", "rho"}
    got = yaml.safe_load(mine.read_text())["experiments"]["tiny"]["synthesize"]
    assert got["n_fake_per_class"] == best["synthesize.n_fake_per_class"]
    assert got["rho"] == pytest.approx(best["synthesize.rho"], rel=1e-5)
    assert "# my comment" in new[0] and "  tiny:   # the tiny one" in new


def test_apply_inserts_a_missing_key_after_the_plain_values(tmp_path):
    from pipeline.tune.apply import apply_values

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_raw_params("circle"), sort_keys=False))
    before = path.read_text().splitlines()
    apply_values(path, "tiny_circle", {"gan.sigma": 0.0123456789, "gan.nu": 2500.0})
    after = path.read_text().splitlines()
    added = [line for line in after if line not in before]
    assert added == ["      sigma: 0.0123457", "      nu: 2500.0"]
    assert after.index("      nu: 2500.0") < after.index("      variants:")  # before the nested section
    with pytest.raises(Exception, match="gan.nu"):
        apply_values(path, "tiny_circle", {"gan.nu": -1.0})


def test_vicinity_study_on_circle_starts_at_the_rule_of_thumb(tiny_circle):
    from pipeline.data import load_dataset
    from pipeline.gan.vicinal import rule_of_thumb

    params, root = tiny_circle
    result = _tune(params, root, "vicinity", "-e", "tiny_circle", "--n-trials", "3", "--variant", "hvdl")
    assert result.exit_code == 0, result.output
    study = _study(root, "tiny_circle-vicinity")
    assert _states(study) == ["COMPLETE"] * 3 and study.direction.name == "MINIMIZE"
    ds = load_dataset(root / "data" / "tiny_circle" / "prepared")
    sigma, _, _ = rule_of_thumb(ds.normalise(ds.y_train), 2.0, 1 / 12)
    assert study.trials[0].params == pytest.approx({"gan.sigma": sigma, "gan.m_kappa": 2.0})
    assert all(t.value >= 0 and math.isfinite(t.value) for t in study.trials)  # 2-Wasserstein
    assert len(study.trials[0].intermediate_values) == 3  # reports for the pruner
    # a binned variant has no vicinity; a classification experiment has no continuous label
    result = _tune(params, root, "vicinity", "-e", "tiny_circle", "--variant", "binned")
    assert result.exit_code == 2 and "binned baseline" in result.output


def test_dre_penalty_study_tunes_lambda_on_a_log_scale(tiny_class):
    params, root = tiny_class
    result = _tune(params, root, "dre-penalty", "-e", "tiny", "--n-trials", "2")
    assert result.exit_code == 0, result.output
    study = _study(root, "tiny-dre-penalty")
    assert _states(study) == ["COMPLETE"] * 2
    assert study.trials[0].params == {"dre.penalty": 0.01}
    assert 1e-4 <= study.trials[1].params["dre.penalty"] <= 10
    assert all(t.value >= 0 for t in study.trials)  # FID on teacher features
    parent, children = _mlflow_children("tiny-dre-penalty")
    assert all("fid_teacher_features_val_without_subsampling" in c.data.metrics for c in children)
    result = _tune(params, root, "n-fake", "-e", "tiny", "--study-name", "tiny-dre-penalty")
    assert result.exit_code == 2 and "is a dre-penalty study" in result.output


def test_failing_and_nan_trials_do_not_stop_the_study(tiny_class, monkeypatch):
    from pipeline.tune.studies import NFakeStudy

    params, root = tiny_class
    real_run, calls = NFakeStudy.run, []

    def flaky(self, values, report):
        calls.append(values)
        if len(calls) == 2:
            raise RuntimeError("boom")
        if len(calls) == 3:
            return float("nan"), {}
        return real_run(self, values, report)

    monkeypatch.setattr(NFakeStudy, "run", flaky)
    result = _tune(params, root, "n-fake", "-e", "tiny", "--n-trials", "4", "--study-name", "flaky")
    assert result.exit_code == 0, result.output
    study = _study(root, "flaky")
    assert _states(study) == ["COMPLETE", "FAIL", "FAIL", "COMPLETE"]
    _, children = _mlflow_children("flaky")
    status = {r.data.tags["optuna_trial"]: (r.info.status, r.data.tags.get("error", "")) for r in children}
    assert status["1"][0] == "FAILED" and "RuntimeError: boom" in status["1"][1]
    assert status["2"][0] == "FAILED" and "nan" in status["2"][1]
    # a rerun tops the study up to 4 good trials
    monkeypatch.setattr(NFakeStudy, "run", real_run)
    result = _tune(params, root, "n-fake", "-e", "tiny", "--n-trials", "4", "--study-name", "flaky")
    assert result.exit_code == 0 and _states(_study(root, "flaky")).count("COMPLETE") == 4


@pytest.mark.parametrize("where", ["run", "suggest"])
def test_ctrl_c_that_a_library_turns_into_an_exception_still_stops_the_study(tiny_class, monkeypatch, where):
    """Optuna's journal-file lock, interrupted while it waits, raises RuntimeError instead of the
    KeyboardInterrupt; Optuna records that as an ordinary failed trial and goes on. The runner
    remembers the Ctrl-C: inside the objective (`run`) and before it (`suggest`, outside the
    objective's own error handling), the study stops with exit 130."""
    from pipeline.tune.studies import NFakeStudy

    params, root = tiny_class
    calls = []

    def interrupted(self, *args):
        calls.append(where)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            raise RuntimeError("Error: did not possess lock") from None
        raise AssertionError("SIGINT did not interrupt")

    monkeypatch.setattr(NFakeStudy, where, interrupted)
    name = f"ctrl-c-{where}"
    result = _tune(params, root, "n-fake", "-e", "tiny", "--n-trials", "3", "--study-name", name)
    assert result.exit_code == 130 and "interrupted" in result.output, result.output
    assert calls == [where]  # no second trial
    study = _study(root, name)
    assert _states(study) == ["FAIL"]
    if where == "run":  # inside the objective the trial is recorded as interrupted
        assert study.trials[0].user_attrs["error"] == "interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


def test_two_workers_share_one_storage(tiny_circle):
    params, root = tiny_circle
    result = _tune(
        params, root, "vicinity", "-e", "tiny_circle", "--n-trials", "4", "--workers", "2", "--study-name", "two"
    )
    assert result.exit_code == 0, result.output
    study = _study(root, "two")
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]  # none lost, none duplicated
    assert _states(study).count("RUNNING") == 0 and len(study.trials) == 4
    workers = {t.user_attrs["worker"].rsplit(":", 2)[1] for t in study.trials}
    assert len(workers) == 2 and str(os.getpid()) not in workers  # two spawned processes did the work
    _, children = _mlflow_children("two")
    assert sorted(int(r.data.tags["optuna_trial"]) for r in children) == [0, 1, 2, 3]


def _start(params: Path, root: Path, name: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-c",
        "from pipeline.cli import main; main()",
        "tune",
        "vicinity",
        "-e",
        "tiny_circle",
        "--n-trials",
        "4",
        "--study-name",
        name,
        "-p",
        str(params),
        "--root",
        str(root),
    ]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ.copy()
    )


def _wait_for_a_fresh_running_trial(root: Path, name: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Return just after a new trial starts (a trial lasts about 2 s) and has recorded its worker
    (within milliseconds: a worker killed before that leaves a trial that nothing can trace to
    it), once one has completed."""
    journal = root / "runs" / "tune" / name / "journal.log"
    end, seen, history = time.monotonic() + timeout, None, []
    while time.monotonic() < end:
        assert proc.poll() is None, proc.stdout.read().decode()
        try:
            trials = sorted(_study(root, name).trials, key=lambda t: t.number) if journal.exists() else []
        except KeyError:  # the journal exists, the study not yet
            trials = []
        states = [t.state.name for t in trials]
        started = [t.number for t in trials if t.state.name == "RUNNING" and "worker" in t.user_attrs]
        if seen is not None and started and started[-1] not in seen and "COMPLETE" in states:
            return
        seen = set(started)
        history.append(",".join(states))
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(
        f"no trial started; states seen: {sorted(set(history))}; output: {proc.communicate()[0].decode()[-3000:]}"
    )


def test_interrupted_and_killed_workers_leave_a_study_that_a_rerun_completes(tiny_circle):
    params, root = tiny_circle
    # Ctrl-C: the running trial is marked failed, the command exits 130 with one line
    proc = _start(params, root, "killed")
    _wait_for_a_fresh_running_trial(root, "killed", proc)
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 130 and "interrupted" in out and "Traceback" not in out
    states = _states(_study(root, "killed"))
    assert "RUNNING" not in states and "FAIL" in states
    # SIGKILL: nothing can clean up; the trial stays RUNNING in the storage
    proc = _start(params, root, "killed")
    _wait_for_a_fresh_running_trial(root, "killed", proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    stale = _study(root, "killed").trials[-1]
    assert stale.state.name == "RUNNING"
    # the rerun marks it failed (its process is gone) and completes the study
    result = _tune(params, root, "vicinity", "-e", "tiny_circle", "--n-trials", "4", "--study-name", "killed")
    assert result.exit_code == 0, result.output
    assert f"trial {stale.number} was left running by a worker that is gone" in result.output
    study = _study(root, "killed")
    assert study.trials[stale.number].state.name == "FAIL"
    assert _states(study).count("COMPLETE") + _states(study).count("PRUNED") == 4 and "RUNNING" not in _states(study)


def test_an_rdb_url_storage_and_clear_errors(tiny_class, tmp_path):
    from pipeline.tune.runner import redact

    params, root = tiny_class
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = _tune(params, root, "n-fake", "-e", "tiny", "--n-trials", "2", "--storage", url, "--study-name", "on-rdb")
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="on-rdb", storage=url)
    assert _states(study) == ["COMPLETE"] * 2
    assert not (root / "runs" / "tune" / "on-rdb" / "journal.log").exists()  # the storage is the database
    assert (root / "runs" / "tune" / "on-rdb" / "summary.json").exists()
    assert redact("postgresql://me:secret@db.lab:5432/optuna") == "postgresql://me:***@db.lab:5432/optuna"
    result = _tune(params, root, "n-fake", "-e", "tiny", "--storage", "nosuchdriver://x/y", "--study-name", "bad")
    assert (
        result.exit_code == 1
        and result.output.startswith("error: --storage nosuchdriver://x/y: cannot open")
        and "Traceback" not in result.output
    )
    result = _tune(params, root, "n-fake", "-e", "nope")
    assert result.exit_code == 2 and "experiments.nope: no such experiment" in result.output
    result = _tune(params, root, "bogus", "-e", "tiny")
    assert result.exit_code == 2 and "study 'bogus': use one of vicinity, dre-penalty, n-fake" in result.output
    result = _tune(params, root, "vicinity", "-e", "tiny")
    assert result.exit_code == 2 and "needs continuous labels" in result.output


def test_a_vicinity_trial_trains_the_gan_that_the_pipeline_would(tiny_circle, tmp_path):
    """Checkpoint evaluations do not disturb the training's random stream: the trial at the
    defaults measures exactly the generator the gan stage trains at those params."""
    import shutil

    from pipeline.artifacts import Paths, load_generator
    from pipeline.params import load_params
    from pipeline.stages import gan
    from pipeline.tune.studies import Options, VicinityStudy

    params_file, root = tiny_circle
    params = load_params(params_file)
    study = VicinityStudy(params, "tiny_circle", Paths("tiny_circle", root), Options(variant="hvdl"))
    study.load()
    reports = []
    value, _ = study.run(study.defaults(), lambda step, v: reports.append(v))
    assert len(reports) == 3
    mine = tmp_path / "repo"
    shutil.copytree(root / "data", mine / "data")
    shutil.copytree(root / "models", mine / "models")
    gan.run(params, "tiny_circle", Paths("tiny_circle", mine))
    assert study.measure(load_generator(mine / "models" / "tiny_circle" / "gan" / "hvdl.pt"))[0] == value
