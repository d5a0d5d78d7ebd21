import math

import pytest
import yaml

from pipeline.report import headline
from tests.conftest import REPO


def _students(metric, **scores):
    return {v: {metric: x, "n_train": 10} for v, x in scores.items()}


def test_headline_classification_by_hand():
    summary = {
        "gan": {
            "cgan": {"fid_evalnet": 2.0},
            "cgan+dre": {"fid_evalnet": 1.5, "acceptance_rate": 0.5},
            "cgan+cdre": {"fid_evalnet": 1.0, "acceptance_rate": 0.25, "labels_short": 1},
        },
        "gan_equal_labels": {
            "cgan": {"fid_evalnet": 1.8, "n_labels": 9},
            "cgan+cdre": {"fid_evalnet": 1.1, "n_labels": 9},
        },
        "teacher": {"test_accuracy": 0.9},
        "students": _students("test_accuracy", real_only=0.8, blkd=0.82, cgan_kd=0.85, cgan_kd_blkd=0.86),
    }
    row = headline("classification", summary, "cgan")
    assert row.pop("cgan_kd_gain") == pytest.approx(0.05)
    # the GAN columns compare on the labels both rows filled (gan_equal_labels), not on all of them
    assert row == {
        "task": "classification",
        "score": "test accuracy",
        "teacher": 0.9,
        "real_only": 0.8,
        "cgan_kd": 0.85,
        "gan_metric": "FID (evaluation classifier)",
        "gan": 1.8,
        "gan_cdre": 1.1,
        "cdre_acceptance": 0.25,
    }


def test_headline_regression_gain_is_positive_when_the_mae_drops_and_circle_has_no_students():
    summary = {
        "gan": {
            "svdl_ili": {"intra_fid_eval_regressor_features": 3.0},
            "svdl_ili+cdre": {"intra_fid_eval_regressor_features": 2.0, "acceptance_rate": 0.4},
        },
        "teacher": {"test_mae": 1.0},
        "students": _students("test_mae", real_only=2.0, cgan_kd=1.5, oracle=1.2),
    }
    row = headline("regression", summary, "svdl_ili")
    assert (
        row["cgan_kd_gain"] == pytest.approx(0.5)
        and row["score"] == "test MAE"
        and (row["gan"], row["gan_cdre"]) == (3.0, 2.0)
    )
    circle = headline(
        "circle", {"gan": {"svdl": {"w2": 3e-4}, "svdl+cdre": {"w2": 1e-4, "acceptance_rate": 0.2}}}, "svdl"
    )
    assert circle == {"task": "circle", "gan_metric": "W2", "gan": 3e-4, "gan_cdre": 1e-4, "cdre_acceptance": 0.2}
    assert not any(isinstance(x, float) and math.isnan(x) for x in circle.values())


def test_headline_files_are_the_only_metrics_dvc_shows():
    """`dvc metrics show` prints one row per experiment with the headline's few keys: every other
    JSON a stage writes is an output (committed, not cached), not a metric."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    metrics = [next(iter(m)) if isinstance(m, dict) else m for s in stages.values() for m in s["do"].get("metrics", [])]
    assert metrics and all(m == "metrics/${item}/headline.json" for m in metrics)
    outs = {next(iter(o)) if isinstance(o, dict) else o for s in stages.values() for o in s["do"].get("outs", [])}
    assert {"metrics/${item}/teacher.json", "metrics/${item}/students.json", "metrics/${item}.json"} <= outs


def test_fine_tuned_students_are_titled_and_follow_their_scratch_twins():
    from pipeline.report import student_order, student_title

    assert student_title("cgan_kd_ft") == "cGAN-KD, fine-tuned from real only"
    assert student_title("cgan_kd_blkd_ft") == "cGAN-KD + BLKD, fine-tuned from BLKD"
    assert student_title("cgan_kd_adjusted_ft") == "cGAN-KD (label adjustment), fine-tuned from real only"
    names = ["cgan_kd_blkd_ft", "cgan_kd_ft", "blkd", "cgan_kd_blkd", "real_only", "cgan_kd"]
    assert sorted(names, key=student_order) == [
        "real_only",
        "blkd",
        "cgan_kd",
        "cgan_kd_blkd",
        "cgan_kd_ft",
        "cgan_kd_blkd_ft",
    ]


def test_report_times_sums_the_newest_pipeline_runs_stages(tmp_path, monkeypatch):
    """Two pipeline runs tracked: --times reads the newest one's stage runs (not the students
    nested in them), one row per stage and one column per experiment, with the totals."""
    import time

    from typer.testing import CliRunner

    from pipeline import tracking
    from pipeline.cli import app
    from pipeline.report import times_table

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for run_id, pause in (("old", 0.0), ("new", 0.2)):
        monkeypatch.setenv("CGANKD_PIPELINE_RUN_ID", run_id)
        for experiment, stage in (("a", "gan"), ("b", "gan"), ("a", "student")):
            with tracking.stage_run(experiment, stage, {}):
                time.sleep(pause)
                if stage == "student":
                    with tracking.stage_run(experiment, stage, {}, run_name="student/x", nested=True):
                        pass
    run, rows = tracking.stage_times()
    assert run == "new" and [(e, s) for e, s, _ in rows] == [("a", "gan"), ("b", "gan"), ("a", "student")]
    assert all(0.2 <= t < 2 for _, _, t in rows)
    table = times_table([("a", "gan", 10.0), ("b", "gan", 20.0), ("a", "student", 30.0)])
    assert table[2:] == [
        "| gan | 10 | 20 | 30 | 50% |",
        "| student | 30 | - | 30 | 50% |",
        "| total | 40 | 20 | 60 | 100% |",
    ]
    out = CliRunner().invoke(app, ["report", "--times"])
    assert out.exit_code == 0 and "pipeline run new" in out.output and "| student |" in out.output
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    out = CliRunner().invoke(app, ["report", "--times"])
    assert out.exit_code == 1 and "no stage run tracked yet" in out.output
