import pytest

from pipeline.repeat import aggregate, markdown


def _summary(acc_real, acc_kd, fid):
    return {
        "teacher": {"test_accuracy": 0.9},
        "gan": {"fid_teacher_features": fid},
        "students": {
            "real_only": {"test_accuracy": acc_real, "n_train": 10},
            "cgan_kd": {"test_accuracy": acc_kd, "n_train": 50},
        },
    }


def test_aggregate_mean_and_sample_std_by_hand():
    agg = aggregate([_summary(0.5, 0.6, 2.0), _summary(0.7, 0.8, 4.0), _summary(0.6, 0.7, 6.0)])
    assert agg["n_seeds"] == 3
    m = agg["metrics"]
    assert m["students.real_only.test_accuracy"]["mean"] == pytest.approx(0.6)
    assert m["students.real_only.test_accuracy"]["std"] == pytest.approx(0.1)  # sqrt(((.1)^2 + (.1)^2 + 0) / 2)
    assert m["gan.fid_teacher_features"] == pytest.approx({"mean": 4.0, "std": 2.0})
    assert "students.cgan_kd.n_train" not in m  # counts are not results
    text = markdown("digits", [0, 1, 2], agg)
    assert "| students.cgan_kd.test_accuracy | 0.7 ± 0.1 |" in text and "seeds 0, 1, 2" in text


def test_aggregate_nested_variants():
    s = lambda w2: {"gan": {"hvdl": {"w2": w2, "steps": 6000}, "binned": {"w2": 2 * w2}}}  # noqa: E731
    m = aggregate([s(1e-4), s(3e-4)])["metrics"]
    assert m["gan.hvdl.w2"]["mean"] == pytest.approx(2e-4) and m["gan.binned.w2"]["mean"] == pytest.approx(4e-4)
    assert "gan.hvdl.steps" not in m


def test_pipeline_run_block_sets_the_id_without_touching_the_environment(monkeypatch):
    import os

    from pipeline import tracking

    monkeypatch.setenv("CGANKD_PIPELINE_RUN_ID", "outer")
    with tracking.pipeline_run("seeds-abc-seed1"):
        assert tracking.pipeline_run_id() == "seeds-abc-seed1"
        with tracking.pipeline_run("inner"):
            assert tracking.pipeline_run_id() == "inner"
        assert tracking.pipeline_run_id() == "seeds-abc-seed1"
    assert tracking.pipeline_run_id() == "outer"
    assert os.environ["CGANKD_PIPELINE_RUN_ID"] == "outer"
