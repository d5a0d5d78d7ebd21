"""student.init: real_only students are fine-tuned from the real-data student of the same method,
on batches drawn over the union of real and fakes (the reference cGAN-KD's recipe)."""

from types import SimpleNamespace

import pytest
import torch

from pipeline.distill import fit as fit_module
from pipeline.distill.fit import Student, fit, fit_student, students
from pipeline.params import validate
from tests.conftest import tiny_raw_params


def _ds(n: int = 40):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return SimpleNamespace(
        x_train=x, y_train=y, x_val=x[:0], y_val=y[:0], x_test=x, y_test=y, channels=1, num_classes=3
    )


def _student_params(**update):
    raw = tiny_raw_params("classification")
    exp = next(e for e in raw["experiments"].values() if e["task"] == "classification")
    exp["student"].update(net="cnn", width=4, steps=2, lr=1e-9, batch_size=8, methods=["blkd"], **update)
    params = validate(raw)
    name = next(n for n, e in params.experiments.items() if e.task == "classification")
    return params.experiment(name)


def test_students_list_fine_tuned_ones_after_their_bases():
    p = _student_params(init=["scratch", "real_only"], variants=["real_only", "cgan_kd"]).student
    got = [(s.name, s.init, s.base) for s in students(p)]
    assert got == [
        ("real_only", "scratch", "real_only"),
        ("blkd", "scratch", "blkd"),
        ("cgan_kd", "scratch", "real_only"),
        ("cgan_kd_blkd", "scratch", "blkd"),
        ("cgan_kd_ft", "real_only", "real_only"),
        ("cgan_kd_blkd_ft", "real_only", "blkd"),
    ]
    only_ft = _student_params(init=["real_only"]).student
    assert [s.name for s in students(only_ft)] == ["real_only", "blkd", "cgan_kd_ft", "cgan_kd_blkd_ft"]


def test_real_only_init_needs_the_real_only_variant():
    with pytest.raises(Exception, match="init: real_only fine-tunes the real_only students"):
        _student_params(init=["real_only"], variants=["cgan_kd"])


def test_fine_tuning_starts_from_the_real_only_weights_and_draws_over_the_union(monkeypatch):
    exp = _student_params(init=["scratch", "real_only"], fake_fraction=0.9)
    ds = _ds()
    fakes = (torch.randn(120, 1, 8, 8), torch.randint(0, 3, (120,)))
    base, _ = fit(exp.student, "classification", ds, seed=1)
    scratch, _ = fit_student(exp, ds, Student("cgan_kd", "cgan_kd", None), teacher=None, fakes=fakes, seed=2)
    tuned, _ = fit_student(
        exp, ds, Student("cgan_kd_ft", "cgan_kd", None, "real_only"), teacher=None, fakes=fakes, seed=2, base=base
    )
    # lr 1e-9 for 2 steps: the fine-tuned student is still the base, the scratch one is a fresh init
    # (weights only: batch-norm statistics move whatever the learning rate)
    tuned_w, scratch_w = dict(tuned.named_parameters()), dict(scratch.named_parameters())
    for name, w in base.named_parameters():
        assert torch.allclose(tuned_w[name], w, atol=1e-6), name
    assert any(not torch.allclose(scratch_w[k], w, atol=1e-3) for k, w in base.named_parameters() if w.dim() > 1)
    # the batch mix: the scratch student gets fake_fraction, the fine-tuned one the union (None)
    seen = []
    real = fit_module.train_classifier
    monkeypatch.setattr(
        fit_module, "train_classifier", lambda *a, **k: seen.append(k["fake_fraction"]) or real(*a, **k)
    )
    fit_student(exp, ds, Student("cgan_kd", "cgan_kd", None), teacher=None, fakes=fakes, seed=2)
    fit_student(
        exp, ds, Student("cgan_kd_ft", "cgan_kd", None, "real_only"), teacher=None, fakes=fakes, seed=2, base=base
    )
    assert seen == [0.9, None]
    with pytest.raises(ValueError, match="pass that trained student as base"):
        fit_student(exp, ds, Student("cgan_kd_ft", "cgan_kd", None, "real_only"), teacher=None, fakes=fakes, seed=2)


def test_fine_tuned_students_start_at_finetune_lr_the_others_at_lr(monkeypatch):
    """The reference fine-tunes at 0.01 what it trains from scratch at 0.05: student.finetune_lr sets
    the _ft students' initial learning rate; scratch students (and unset finetune_lr) keep lr."""
    ds = _ds()
    fakes = (torch.randn(20, 1, 8, 8), torch.randint(0, 3, (20,)))
    lrs = []
    real = fit_module.train_classifier
    monkeypatch.setattr(fit_module, "train_classifier", lambda *a, **k: lrs.append(k["lr"]) or real(*a, **k))
    for finetune_lr in (0.002, None):
        exp = _student_params(init=["scratch", "real_only"], finetune_lr=finetune_lr)
        base, _ = fit(exp.student, "classification", ds, seed=1)
        fit_student(exp, ds, Student("cgan_kd", "cgan_kd", None), teacher=None, fakes=fakes, seed=2)
        ft = Student("cgan_kd_ft", "cgan_kd", None, "real_only")
        fit_student(exp, ds, ft, teacher=None, fakes=fakes, seed=2, base=base)
    assert lrs == [1e-9, 1e-9, 0.002, 1e-9, 1e-9, 1e-9]
