import pytest

from pipeline.repeat import aggregate, markdown


def _summary(acc_real, acc_kd, fid):
    return {
        "teacher": {"test_accuracy": 0.9},
        "gan": {"fid_teacher_features": fid},
        "students": {"real_only": {"test_accuracy": acc_real, "n_train": 10}, "cgan_kd": {"test_accuracy": acc_kd, "n_train": 50}},
    }


def test_aggregate_mean_and_sample_std_by_hand():
    agg = aggregate([_summary(0.5, 0.6, 2.0), _summary(0.7, 0.8, 4.0), _summary(0.6, 0.7, 6.0)])
    assert agg["n_seeds"] == 3
    assert agg["students"]["real_only"]["mean"] == pytest.approx(0.6)
    assert agg["students"]["real_only"]["std"] == pytest.approx(0.1)  # sqrt(((.1)^2 + (.1)^2 + 0) / 2)
    assert agg["gan"]["fid_teacher_features"] == pytest.approx({"mean": 4.0, "std": 2.0})
    text = markdown("digits", [0, 1, 2], agg)
    assert "| cGAN-KD | 0.7000 ± 0.1000 |" in text and "seeds 0, 1, 2" in text
