import math

import pytest
import torch

from pipeline.claims import Claim, claims_for, judge, table, value
from pipeline.metrics.variants import equal_label_rows


def _cls(real, blkd, kd, kd_blkd, teacher=0.99, fid=(2.0, 1.5)):
    return {
        "teacher": {"test_accuracy": teacher},
        "students": {
            v: {"test_accuracy": a}
            for v, a in zip(("real_only", "blkd", "cgan_kd", "cgan_kd_blkd"), (real, blkd, kd, kd_blkd))
        },
        "gan_equal_labels": {
            "cgan": {"intra_fid_evalnet": fid[0]},
            "cgan+cdre": {"intra_fid_evalnet": fid[1]},
        },
    }


def test_value_reads_dotted_paths_and_nan_when_missing():
    s = _cls(0.9, 0.92, 0.91, 0.95)
    assert value(s, "students.blkd.test_accuracy") == 0.92
    assert math.isnan(value(s, "students.nope.test_accuracy")) and math.isnan(value(s, "teacher"))


def test_classification_claims_by_hand():
    seeds = [_cls(0.90, 0.95, 0.91, 0.96), _cls(0.92, 0.95, 0.93, 0.97), _cls(0.94, 0.99, 0.91, 0.99)]
    verdicts = {
        v.claim.text.split(" (")[0]: v for v in judge("cls", claims_for("classification", seeds[0], "cgan"), seeds)
    }
    gap = verdicts["teacher at least 3 points above the real-only student"]
    assert gap.margins == pytest.approx([0.06, 0.04, 0.02])  # 0.99 - (real + 0.03)
    assert gap.result == "PASS"
    blkd = verdicts["BLKD below the teacher"]
    assert blkd.margins == pytest.approx([0.04, 0.04, 0.0]) and blkd.result == "PASS"
    kd = verdicts["cGAN-KD > real only"]
    assert kd.margins == pytest.approx([0.01, 0.01, -0.03])  # mean below 0: no gain
    assert kd.result == "MISS"
    kd_blkd = verdicts["cGAN-KD + BLKD >= BLKD"]
    assert kd_blkd.margins == pytest.approx([0.01, 0.02, 0.0]) and kd_blkd.result == "PASS"
    sub = verdicts["cDRE-F-cSP+RS better than no subsampling"]
    assert sub.margins == pytest.approx([0.5] * 3) and sub.result == "PASS"


def test_inside_spread_every_seed_and_missing_values():
    c = Claim("a > b", "a", ">", "b")
    noisy = judge("x", [c], [{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 0.5}, {"a": 0.1, "b": 0.0}])[0]
    assert (
        noisy.passed and noisy.inside_spread and noisy.result == "PASS (inside the seed spread)"
    )  # mean 0.2, std 0.75
    every = Claim("a < half of b, every seed", "a", "<", "b", factor=0.5, every_seed=True)
    assert judge("x", [every], [{"a": 1.0, "b": 4.0}, {"a": 1.0, "b": 2.5}])[0].result == "PASS"
    assert (
        judge("x", [every], [{"a": 1.0, "b": 4.0}, {"a": 1.0, "b": 2.0}])[0].result == "MISS"
    )  # 1 < 1 fails on seed 1
    assert judge("x", [c], [{"a": 1.0}])[0].result == "MISS (not measured)"  # a missing number never passes
    text = table(judge("x", [c, every], [{"a": 1.0, "b": 4.0}, {"a": 1.0, "b": 2.0}]), [0, 1])
    assert "| x | a > b | a: 1 ± 0 | > b: 3 ± 1.4 | -3, -1 | MISS |" in text
    assert "0.5 x b" in text and "0 of 2 claims hold" in text


def test_circle_and_regression_claims_cover_every_ccgan_variant():
    gan = {"hvdl": {}, "svdl": {}, "svdl+dre": {}, "svdl+cdre": {}, "binned": {}}
    texts = [c.text for c in claims_for("circle", {"gan": gan}, "svdl")]
    assert (
        sum("hvdl" in t for t in texts) == 2
        and sum("svdl" in t for t in texts) == 2
        and not any("+" in t.split(":")[0] for t in texts[:-1])
    )
    w2 = next(c for c in claims_for("circle", {"gan": gan}, "svdl") if "hvdl: 2-W" in c.text)
    assert w2.margin({"gan": {"hvdl": {"w2": 1.0}, "binned": {"w2": 3.0}}}) == pytest.approx(0.5) and w2.every_seed
    reg = [c.left for c in claims_for("regression", {"gan": {"a": {}, "binned": {}}}, "a")]
    assert reg[0] == "students.cgan_kd_adjusted.test_mae" and "gan.a.label_score" in reg
    assert reg[-1] == "gan_equal_labels.a+cdre.label_score"


def test_equal_label_rows_measure_subsampled_rows_on_the_labels_all_filled():
    """Row "sub" leaves label 2 short: both rows are measured again on labels 0 and 1 only."""
    labels = torch.tensor([0.0, 0.5, 1.0])
    y_full = labels.repeat_interleave(2)
    x_full = torch.tensor([1.0, 1.0, 2.0, 2.0, 9.0, 9.0])
    y_sub, x_sub = torch.tensor([0.0, 0.0, 0.5, 0.5, 1.0]), torch.tensor([1.0, 1.0, 4.0, 4.0, 0.0])
    calls = []

    def metrics_of(x, y, keep):
        calls.append(keep.tolist())
        return {"mean": float(x.mean())}

    drawn = {"plain": (x_full, y_full), "sub": (x_sub, y_sub)}
    rows = {
        "plain": metrics_of(x_full, y_full, torch.ones(3, dtype=torch.bool)),
        "sub": {"mean": 2.0, "labels_short": 1},
    }
    equal = equal_label_rows(drawn, rows, labels, 2, metrics_of)
    assert equal == {"plain": {"mean": 1.5, "n_labels": 2}, "sub": {"mean": 2.5, "n_labels": 2}}
    assert calls[1:] == [[True, True, False]] * 2
    # nothing short: the rows are reused as they are (without the rejection-sampling columns)
    same = equal_label_rows(
        {"plain": (x_full, y_full), "sub": (x_full, y_full)},
        {"plain": {"mean": 1.0}, "sub": {"mean": 3.0, "labels_short": 0}},
        labels,
        2,
        metrics_of,
    )
    assert same == {"plain": {"mean": 1.0, "n_labels": 3}, "sub": {"mean": 3.0, "n_labels": 3}}


def test_diagnostics_list_what_each_seed_measured():
    from pipeline.claims import diagnostics
    from pipeline.params import validate
    from tests.conftest import tiny_raw_params

    params = validate(tiny_raw_params("regression"))
    runs = [
        {"teacher": {"test_mae": m}, "synthetic": {"label_noise_cond": 4.0, "label_noise_adjusted": 2.0}}
        for m in (1.0, 3.0)
    ]
    text = diagnostics(params, {"tiny_reg": runs})
    assert "| teacher test MAE (real images) | 2 ± 1.4 | 1, 3 |" in text
    assert "| label noise of the kept fakes: teacher-adjusted labels | 2 ± 0 | 2, 2 |" in text
    assert "oracle" not in text  # what was not measured is left out


def test_one_claim_per_kd_method_the_students_have():
    """cGAN-KD + X >= X for each method X trained both ways, and none for one trained on real data only."""
    s = _cls(0.9, 0.92, 0.91, 0.95)
    s["students"] |= {
        "fitnet": {"test_accuracy": 0.93},
        "cgan_kd_fitnet": {"test_accuracy": 0.92},
        "rkd": {"test_accuracy": 0.9},
    }
    verdict = {v.claim.text: v for v in judge("cls", claims_for("classification", s, "cgan"), [s])}
    assert verdict["cGAN-KD + FitNet >= FitNet (test accuracy)"].margins == pytest.approx([-0.01])
    assert not any("RKD" in text for text in verdict)
    reg = {"students": {m: {"test_mae": 1.0} for m in ("real_only", "cgan_kd", "cgan_kd_adjusted", "at", "cgan_kd_at")}}
    assert "cGAN-KD + AT test MAE <= AT" in [c.text for c in claims_for("regression", reg, "svdl")]


def test_diagnostics_show_every_students_test_score_in_table_order():
    from pipeline.claims import diagnostics
    from pipeline.params import validate
    from tests.conftest import tiny_raw_params

    params = validate(tiny_raw_params())
    runs = [_cls(0.9, 0.92, 0.91, 0.95) | {"teacher": {"test_accuracy": 0.99}} for _ in range(2)]
    for r in runs:
        r["students"] |= {"fitnet": {"test_accuracy": 0.93}, "cgan_kd_fitnet": {"test_accuracy": 0.94}}
    lines = diagnostics(params, {"tiny": runs}).splitlines()
    rows = [line.split(" |")[0][2:] for line in lines if line.startswith("| ") and "test accuracy" in line]
    assert rows == [
        "teacher test accuracy",
        "real only: test accuracy",
        "BLKD: test accuracy",
        "FitNet: test accuracy",
        "cGAN-KD: test accuracy",
        "cGAN-KD + BLKD: test accuracy",
        "cGAN-KD + FitNet: test accuracy",
    ]
    assert "| FitNet: test accuracy | 0.93 ± 0 | 0.93, 0.93 |" in lines


def _zoo(intra: dict[str, float], is_: dict[str, float], real_is: float = 9.0) -> dict:
    kinds = {"2ngan": ("2ngan", 1.0), "cdcgan": ("cdcgan", 1.0), "acgan": ("acgan", 1.0), "full": ("projection", 1.0)}
    kinds |= {"alone": ("projection", 0.2), "semi": ("s3gan", 0.2)}
    return {
        "variants": {v: {"kind": k, "label_fraction": f} for v, (k, f) in kinds.items()},
        "gan": {
            v: {"is_teacher_classifier": is_.get(v, 8.0), "intra_fid_teacher_features": intra.get(v, 5.0)}
            for v in kinds
        },
        "reference": {"is_teacher_classifier_real_test": real_is},
    }


def test_ganzoo_claims_find_variants_by_kind_and_label_share():
    seeds = [
        _zoo({"full": 10.0, "semi": 11.0, "alone": 20.0}, {"2ngan": 7.0, "cdcgan": 6.0, "acgan": 3.0}),
        _zoo({"full": 12.0, "semi": 10.0, "alone": 18.0}, {"2ngan": 7.5, "cdcgan": 6.5, "acgan": 4.4}),
        _zoo({"full": 11.0, "semi": 14.0, "alone": 19.0}, {"2ngan": 7.2, "cdcgan": 6.0, "acgan": 5.0}),
    ]
    verdicts = {v.claim.text: v for v in judge("zoo", claims_for("ganzoo", seeds[0], None), seeds)}
    collapse = verdicts["acgan: no collapse (IS at least half the test images'), every seed"]
    assert collapse.margins == pytest.approx([-1.5, -0.1, 0.5]) and collapse.result == "MISS"  # IS - 0.5 x 9
    assert verdicts["document's order: 2N-GAN IS > cDCGAN IS"].result == "PASS"
    within = verdicts["S3GAN 20% labels: intra-FID within the seed spread of the projection GAN (100%)"]
    assert within.margins == pytest.approx([-1.0, 2.0, -3.0])  # worse by 0.67 on average, std 2.5: within it
    assert within.passed and within.result == "PASS (worse, but within the seed spread)"
    alone = verdicts["S3GAN 20% labels: intra-FID below the projection GAN on those labelled images alone"]
    assert alone.margins == pytest.approx([9.0, 8.0, 5.0]) and alone.result == "PASS"
    assert not any("10%" in text for text in verdicts)  # no 10% variants in these summaries

    worse = [_zoo({"full": 10.0 + d, "semi": 20.0 + d}, {}) for d in (0.0, 0.5, -0.5)]
    far = {v.claim.text: v for v in judge("zoo", claims_for("ganzoo", worse[0], None), worse)}
    assert far["S3GAN 20% labels: intra-FID within the seed spread of the projection GAN (100%)"].result == "MISS"


def test_match_codes_recovers_the_permutation():
    from pipeline.stages.evaluate_zoo import match_codes

    perm = torch.tensor([2, 0, 3, 1])
    codes = torch.arange(4).repeat(5)
    classes = perm[codes].clone()
    classes[:3] = torch.tensor([0, 0, 0])  # two disagreements: code 0 -> 0 and code 2 -> 0 (code 1 -> 0 is right)
    mapping, agreement = match_codes(codes, classes, 4)
    assert torch.equal(mapping, perm) and agreement == pytest.approx(18 / 20)
