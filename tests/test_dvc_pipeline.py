"""A full `dvc repro` of a tiny config in a temporary copy of the repository."""

import json

import pytest
import yaml

from tests.tiny_repo import dvc, make_tiny_repo, stages_run


# about 3.5 min (23 stage processes, three repros): `make test-slow`; test_cli runs the same stages in process
@pytest.mark.slow
def test_dvc_repro_tiny_config(tmp_path):
    repo = tmp_path / "repo"
    raw = make_tiny_repo(repo, "classification", "regression", "circle")

    everything = {
        f"{s}@tiny"
        for s in ["prepare", "teacher", "evalnets", "gan", "features", "dre", "synthesize", "student", "evaluate"]
    }
    everything |= {
        f"{s}@tiny_reg"
        for s in [
            "prepare",
            "embed",
            "teacher",
            "ccgan",
            "features_continuous",
            "dre_continuous",
            "synthesize",
            "student",
            "evalnets",
            "evaluate_regression",
        ]
    }
    everything |= {
        f"{s}@tiny_circle"
        for s in ["prepare", "embed", "ccgan", "features_continuous", "dre_continuous", "evaluate_simulation"]
    }
    assert stages_run(dvc(repo, "repro")) == everything  # each task runs its own chain, chosen by params.yaml's groups
    assert (repo / "dvc.lock").exists()
    assert (repo / "metrics" / "tiny.md").read_text().count("|") > 10
    assert (repo / "models" / "tiny" / "gan" / "cgan.pt").exists()
    assert (repo / "models" / "tiny_reg" / "gan" / "svdl_ili.pt").exists() and (
        repo / "metrics" / "tiny_circle.md"
    ).exists()

    assert stages_run(dvc(repo, "repro")) == set()  # nothing changed: nothing runs
    shown = dvc(repo, "metrics", "show").splitlines()  # one row per experiment, the headline's keys as columns
    assert sorted(line.split()[0] for line in shown[1:]) == [
        f"metrics/{e}/headline.json" for e in ("tiny", "tiny_circle", "tiny_reg")
    ]
    assert shown[0].split()[1:] == sorted(
        [
            "cdre_acceptance",
            "cgan_kd",
            "cgan_kd_gain",
            "gan",
            "gan_cdre",
            "gan_metric",
            "real_only",
            "score",
            "task",
            "teacher",
        ]
    )

    raw["experiments"]["tiny"]["gan"]["steps"] = 8
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    # only the GAN and what follows it rerun
    assert stages_run(dvc(repo, "repro")) == {
        "gan@tiny",
        "dre@tiny",
        "synthesize@tiny",
        "student@tiny",
        "evaluate@tiny",
    }


# about 45 s: prepare, the evaluation teacher, nine GANs (every kind, KD-DLGAN) and their table
def test_dvc_repro_tiny_ganzoo(tmp_path):
    repo = tmp_path / "repo"
    raw = make_tiny_repo(repo, "ganzoo")
    log = dvc(repo, "repro")
    assert stages_run(log) == {f"{s}@tiny_zoo" for s in ("prepare", "zoo_teacher", "zoo_gan", "zoo_evaluate")}
    variants = raw["experiments"]["tiny_zoo"]["gan"]["variants"]
    metrics = repo / "metrics" / "tiny_zoo"
    gan_files = {p.name for p in (repo / "models" / "tiny_zoo" / "gan").iterdir()}
    assert gan_files == {f"{v}.pt" for v in variants} | {"kd_teacher.pt"}  # KD-DLGAN's encoder
    assert {p.name for p in metrics.glob("gan_*_*.png")} == {
        *(f"gan_samples_{v}.png" for v in variants),
        "gan_codes_infogan.png",
    }
    summary = json.loads((repo / "metrics" / "tiny_zoo.json").read_text())
    assert set(summary["gan"]) == set(variants)
    assert "intra_fid_teacher_features" not in summary["gan"]["dcgan"]  # unconditional: no labels to be measured at
    assert "code_accuracy" in summary["gan"]["infogan"] and "teacher_accuracy_on_fakes" in summary["gan"]["s3gan_l50"]
    table = (repo / "metrics" / "tiny_zoo.md").read_text()
    assert "| s3gan_l50 (s3gan, 50% labels) |" in table
    assert "| kd_dlgan_d50 (projection, 100% labels, 50% data, DiffAugment, AGKD+CGKD) |" in table
    assert all("d_gap" in m for m in summary["gan"].values())
    assert stages_run(dvc(repo, "repro")) == set()


# about 30 s: prepare, the evaluation nets, a tiny CycleGAN and its table
def test_dvc_repro_tiny_translation(tmp_path):
    repo = tmp_path / "repo"
    make_tiny_repo(repo, "translation")
    log = dvc(repo, "repro")
    stages = ("prepare", "translation_evalnets", "cyclegan", "translation_evaluate")
    assert stages_run(log) == {f"{s}@tiny_trans" for s in stages}
    assert (repo / "models" / "tiny_trans" / "gan" / "cyclegan.pt").exists()
    summary = json.loads((repo / "metrics" / "tiny_trans.json").read_text())
    assert "label_error" in summary["translation"]["AtoB"]
    assert (repo / "metrics" / "tiny_trans" / "translation_BtoA.png").exists()
    assert stages_run(dvc(repo, "repro")) == set()
