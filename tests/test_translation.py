"""CycleGAN: its losses by hand, the image pool, the learning-rate decay, the data (built-in styles
and the trainA/ trainB/ testA/ testB/ folders), resume, the stages and `cgankd translate`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.data.translation import (
    TranslationDataset,
    load_chair_styles,
    load_image_folders,
    load_translation,
    save_translation,
)
from pipeline.errors import DataError, ParamsError
from pipeline.gan.cycle import CycleState, ImagePool, cycle_losses, identity_losses, lr_factor, train_cycle
from pipeline.gan.losses import LOSSES
from pipeline.nets.cyclegan import PatchDiscriminator, ResnetGenerator, build_cyclegan
from pipeline.params import validate
from tests.conftest import build_experiment, tiny_raw_params


class Affine(torch.nn.Module):
    def __init__(self, scale: float, shift: float) -> None:
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x + self.shift


def test_cycle_and_identity_losses_by_hand():
    x = torch.tensor([[[[0.2, -0.4]]]])  # (1, 1, 1, 2)
    y = torch.tensor([[[[1.0, 0.0]]]])
    G, F = Affine(2.0, 0.0), Affine(1.0, 0.5)  # G(v) = 2v, F(v) = v + 0.5
    fake_y, fake_x, cyc_x, cyc_y = cycle_losses(G, F, x, y)
    assert torch.allclose(fake_y, 2 * x) and torch.allclose(fake_x, y + 0.5)
    # F(G(x)) = 2x + 0.5 -> |x + 0.5| = (0.7, 0.1): mean 0.4;  G(F(y)) = 2y + 1 -> |y + 1| = (2, 1): mean 1.5
    assert cyc_x.item() == pytest.approx(0.4)
    assert cyc_y.item() == pytest.approx(1.5)
    # identity: |G(y) - y| = |y| = (1, 0): 0.5;  |F(x) - x| = 0.5
    id_y, id_x = identity_losses(G, F, x, y)
    assert (id_y.item(), id_x.item()) == pytest.approx((0.5, 0.5))


def test_least_squares_loss_by_hand():
    d, g = LOSSES["ls"]
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.5, -1.0])
    assert d(real, fake).item() == pytest.approx((0 + 1) / 2 + (0.25 + 1) / 2)
    assert g(fake).item() == pytest.approx((0.25 + 4) / 2)


def test_image_pool_stores_until_full_then_returns_past_fakes_half_the_time():
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first) and len(pool) == 4  # not full yet: every fake back as it is
    fresh = 0
    seen_past = set()
    n = 4000
    for i in range(n):
        new = torch.full((1, 1, 1, 1), 100.0 + i)
        out = pool.query(new)
        if out.item() == new.item():
            fresh += 1
        else:
            seen_past.add(out.item())
            assert out.item() < 100.0 + i  # an older fake
    assert abs(fresh / n - 0.5) < 0.03  # 4000 draws: std of the share 0.008
    assert {0.0, 1.0, 2.0, 3.0} <= seen_past  # the first fakes came back
    assert len(pool) == 4
    assert torch.equal(ImagePool(0).query(first), first)


def test_image_pool_state_round_trip():
    pool = ImagePool(3)
    pool.query(torch.randn(5, 1, 2, 2))
    other = ImagePool(0)
    other.load_state_dict(pool.state_dict())
    assert other.size == 3 and pool.images is not None and other.images is not None
    assert torch.equal(other.images, pool.images)


def test_learning_rate_constant_then_linear_to_zero():
    assert [lr_factor(s, 10, 6) for s in (0, 5, 6, 8, 10)] == pytest.approx([1, 1, 1, 0.5, 0])
    assert lr_factor(3, 10, 10) == 1.0


def test_nets_shapes():
    G, D = ResnetGenerator(3, 8, 2, 2), PatchDiscriminator(3, 8, 3)
    x = torch.randn(2, 3, 32, 32)
    assert G(x).shape == x.shape and G(x).abs().max() <= 1
    assert D(x).shape == (2, 1, 2, 2)  # 32 -> 16 -> 8 -> 4 -> 3 (stride 1) -> 2
    with pytest.raises(ValueError, match="multiple of 4"):
        G(torch.randn(1, 3, 30, 30))


def _state(seed: int = 0) -> CycleState:
    torch.manual_seed(seed)
    arch = {"channels": 1, "g_width": 4, "n_blocks": 1, "n_down": 1, "d_width": 4, "d_layers": 1}
    return CycleState.create(*build_cyclegan(arch), 2e-4, (0.5, 0.999), 3)


def test_resumed_training_matches_uninterrupted():
    a, b = torch.rand(10, 1, 8, 8) * 2 - 1, torch.rand(10, 1, 8, 8) * 2 - 1
    kw = {"steps": 6, "batch_size": 2, "decay_start": 3, "log_every": 2}
    straight = train_cycle(_state(), a, b, **kw)
    saved = {}
    half = _state()  # the first half, then its state is saved
    train_cycle(
        half, a, b, **{**kw, "steps": 3}, checkpoint_every=3, on_checkpoint=lambda s: saved.update(s.state_dict())
    )
    resumed = _state(seed=1)  # other initial weights: everything must come from the checkpoint
    resumed.load_state_dict(saved)
    train_cycle(resumed, a, b, **kw)
    for k, v in straight.state_dict().items():
        if k.startswith(("G_", "D_")):
            for name, t in v.items():
                assert torch.equal(t, resumed.state_dict()[k][name]), (k, name)
    assert straight.history[-1] == resumed.history[-1]
    assert resumed.opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * lr_factor(5, 6, 3))


def test_chair_styles_are_two_unpaired_domains():
    ds = load_chair_styles(image_size=16, n_models=2, n_train=30, n_test=8, seed=0)
    assert ds.a_train.shape == (30, 1, 16, 16) and ds.b_test.shape == (8, 1, 16, 16)
    corner = (slice(None), 0, 0, 0)
    assert (ds.a_train[corner] == -1).all()  # shaded: black background
    assert (ds.b_train[corner] == 1).all()  # drawn: white background
    assert not torch.equal(ds.label_a_train, ds.label_b_train)  # each side its own yaws: nothing paired
    for labels in (ds.label_a_train, ds.label_b_train, ds.label_a_test, ds.label_b_test):
        assert labels.min() >= 0 and labels.max() < 90
    again = load_chair_styles(image_size=16, n_models=2, n_train=30, n_test=8, seed=0)
    assert torch.equal(again.b_train, ds.b_train)


def test_translation_dataset_round_trip_and_bad_file(tmp_path):
    ds = load_chair_styles(image_size=16, n_models=1, n_train=4, n_test=2)
    save_translation(ds, tmp_path)
    back = load_translation(tmp_path)
    assert torch.equal(back.b_test, ds.b_test) and back.label_range == (0.0, 90.0) and back.has_labels
    torch.save({"x": 1}, tmp_path / "dataset.pt")
    with pytest.raises(DataError, match="unreadable translation data"):
        load_translation(tmp_path)


def _png(path, size, color, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def test_image_folders_load_the_cyclegan_layout(tmp_path):
    _png(tmp_path / "trainA" / "a0.png", (20, 12), (255, 0, 0))
    _png(tmp_path / "trainA" / "a1.jpg", (8, 8), (0, 0, 255))
    _png(tmp_path / "trainB" / "b0.png", (16, 16), 0, mode="L")
    _png(tmp_path / "testA" / "t.png", (16, 16), (255, 255, 255))
    _png(tmp_path / "testB" / "t.png", (16, 16), (0, 255, 0))
    (tmp_path / "trainA" / "notes.txt").write_text("not an image")
    ds = load_image_folders(tmp_path, image_size=8, channels=3)
    assert ds.a_train.shape == (2, 3, 8, 8) and ds.b_train.shape == (1, 3, 8, 8) and not ds.has_labels
    assert torch.allclose(ds.a_train[0, :, 4, 4], torch.tensor([1.0, -1.0, -1.0]))  # red, resized, in [-1, 1]
    assert torch.allclose(ds.b_train, torch.full_like(ds.b_train, -1.0))  # grey 0 -> -1 on every channel
    grey = load_image_folders(tmp_path, image_size=8, channels=1)
    assert grey.a_train.shape == (2, 1, 8, 8)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda r: None, "testB: folder not found"),
        (lambda r: (r / "testB").mkdir(), "testB: no images in it"),
        (lambda r: (r / "testB").mkdir() or (r / "testB" / "x.png").write_text("broken"), "x.png: not a readable"),
    ],
)
def test_image_folders_one_line_errors(tmp_path, setup, message):
    for split in ("trainA", "trainB", "testA"):
        _png(tmp_path / split / "x.png", (8, 8), (10, 20, 30))
    setup(tmp_path)
    with pytest.raises(DataError, match=message):
        load_image_folders(tmp_path, image_size=8)


def test_params_errors_name_the_key():
    raw = tiny_raw_params("translation")
    raw["experiments"]["tiny_trans"]["data"]["image_size"] = 18
    raw["experiments"]["tiny_trans"]["gan"]["n_down"] = 2
    with pytest.raises(ParamsError, match="data.image_size 18: the generator needs a multiple of 2\\^gan.n_down = 4"):
        validate(raw)
    raw["experiments"]["tiny_trans"]["data"] = {"name": "folders"}
    with pytest.raises(ParamsError, match="experiments.tiny_trans.data: .*set root"):
        validate(raw)
    raw["experiments"]["tiny_trans"]["data"] = {"name": "chair_styles"}
    raw["experiments"]["tiny_trans"]["gan"]["loss"] = "wasserstein"
    with pytest.raises(ParamsError, match="experiments.tiny_trans.gan.loss: .*unknown GAN loss 'wasserstein'"):
        validate(raw)


def test_stages_resume_evaluate_and_translate(tmp_path):
    stages = ["prepare", "evalnets", "gan", "evaluate"]
    params, root = build_experiment(tmp_path, "translation", "tiny_trans", stages)
    metrics = root / "metrics"
    summary = json.loads((metrics / "tiny_trans.json").read_text())
    rows = summary["translation"]
    assert set(rows) == {"AtoB", "identity AtoB", "BtoA", "identity BtoA"}
    assert {"label_error", "cycle_l1", "reads_as_target", "fid_label_regressor_features"} <= set(rows["AtoB"])
    assert summary["thresholds"] == {"reads_as_target": 0.5, "label_error": 10.0}
    ds = load_translation(root / "data" / "tiny_trans" / "prepared")
    guess = float((ds.label_a_test - ds.label_b_train.median()).abs().mean())
    assert summary["reference"]["label_error_constant_guess"] == pytest.approx(guess)
    assert "reads B's median one for every image scores" in (metrics / "tiny_trans.md").read_text()
    assert (metrics / "tiny_trans" / "translation_AtoB.png").exists()
    assert json.loads((metrics / "tiny_trans" / "headline.json").read_text())["task"] == "translation"
    ckpt = root / "models" / "tiny_trans" / "gan" / "cyclegan.pt"
    assert ckpt.exists() and (root / "models" / "tiny_trans" / "eval_nets" / "regressor.pt").exists()

    # interrupted right after its first checkpoint (step 3 of 6), the gan stage resumes from it
    from pipeline.stages import translation

    ckpt.unlink()
    save = translation.save_gan

    def save_then_interrupt(*args, **kwargs):
        save(*args, **kwargs)
        raise KeyboardInterrupt

    gan = ["gan", "-e", "tiny_trans", "-p", str(params), "--root", str(root)]
    translation.save_gan = save_then_interrupt
    try:
        result = CliRunner().invoke(app, gan)
    finally:
        translation.save_gan = save
    assert result.exit_code == 130 and "interrupted" in result.output
    result = CliRunner().invoke(app, gan)
    assert result.exit_code == 0 and "resuming from step 3 of 6" in result.output, result.output
    raw = yaml.safe_load(params.read_text())
    raw["experiments"]["tiny_trans"]["gan"]["lambda_id"] = 0.0  # another config: trained afresh
    params.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, gan)
    assert result.exit_code == 0 and "params changed since the last checkpoint" in result.output

    # cgankd translate on two images (any size, RGB): grey 16x16 PNGs out, and the side-by-side picture
    inputs = tmp_path / "mine"
    _png(inputs / "one.png", (40, 30), (200, 100, 50))
    _png(inputs / "two.jpg", (16, 16), (0, 0, 0))
    out = tmp_path / "out"
    args = ["translate", "-e", "tiny_trans", "-p", str(params), "--root", str(root), "-i", str(inputs), "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["one.png", "translations.png", "two.png"]
    image = np.asarray(Image.open(out / "one.png"))
    assert image.shape == (16, 16) and image.dtype == np.uint8
    result = CliRunner().invoke(app, [*args[:-4], "-i", str(inputs / "one.png"), "-o", str(out), "-d", "BtoA"])
    assert result.exit_code == 0, result.output

    for bad, message, code in [
        (["-i", str(tmp_path / "missing.png")], "missing.png: no such file or folder", 1),
        (["-i", str(inputs), "-d", "sideways"], "--direction must be AtoB or BtoA", 2),
    ]:
        result = CliRunner().invoke(app, [*args[:-4], *bad, "-o", str(out)])
        assert result.exit_code == code and message in result.output, result.output
        assert "Traceback" not in result.output


def test_translate_refuses_other_tasks(tmp_path, tiny_params_file):
    args = ["translate", "-e", "tiny", "-p", str(tiny_params_file), "-i", str(tmp_path), "-o", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "a classification experiment, not a translation one" in result.output


def test_dataset_checks_shapes():
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="b_train must be float32"):
        TranslationDataset(x, torch.zeros(2, 3, 8, 8), x, x)
    with pytest.raises(ValueError, match="label_a_train has 1 labels for 2 images"):
        TranslationDataset(x, x, x, x, label_a_train=torch.zeros(1))


def test_claims_on_a_translation_summary():
    from pipeline.claims import claims_for, judge

    def summary(label_error: float, fid: float) -> dict:
        key = "fid_label_regressor_features"
        return {
            "translation": {
                "AtoB": {key: fid, "reads_as_target": 0.9, "cycle_l1": 0.1, "label_error": label_error},
                "identity AtoB": {key: 5.0, "reads_as_target": 0.0, "label_error": 40.0},
                "BtoA": {"reads_as_target": 0.4, "cycle_l1": 0.1},
                "identity BtoA": {"reads_as_target": 0.0},
            },
            "thresholds": {"reads_as_target": 0.5, "label_error": 10.0},
        }

    runs = [summary(6.0, 1.0), summary(12.0, 2.0)]  # label error 9 on average: below 10
    verdicts = {v.claim.text: v for v in judge("x", claims_for("translation", runs[0], None), runs)}
    assert verdicts["CycleGAN A->B keeps the label: error below 10"].passed
    assert verdicts["CycleGAN A->B: label error at most half the identity mapping's"].margins == [14.0, 8.0]
    assert verdicts["CycleGAN A->B: FID to domain B below the identity mapping's"].passed
    assert not verdicts["CycleGAN B->A: most translations read as domain A"].passed
    unlabelled = summary(6.0, 1.0)
    del unlabelled["translation"]["AtoB"]["label_error"]
    assert len(claims_for("translation", unlabelled, None)) == 3  # no label: no label claims


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["generate", "-o", "out/x"], "a translation experiment maps images: use cgankd translate"),
        (["tune", "vicinity", "--n-trials", "1"], "which a translation experiment does not have"),
        (["subsample", "-o", "out/y", "-g", "PARAMS"], "a translation experiment has no density-ratio nets"),
    ],
)
def test_commands_of_other_tasks_refuse_translation_in_one_line(tmp_path, command, message):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_raw_params("translation")))
    args = [a.replace("PARAMS", str(params)) for a in command]
    result = CliRunner().invoke(app, [*args, "-e", "tiny_trans", "-p", str(params), "--root", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_stages_on_unlabelled_folders(tmp_path):
    """A user's trainA/ trainB/ testA/ testB/ folders: no label, so FID on the domain classifier and no label rows."""
    rng = np.random.default_rng(0)
    for split, shade in (("trainA", 40), ("testA", 40), ("trainB", 210), ("testB", 210)):
        for k in range(6):
            pixels = np.clip(shade + rng.normal(0, 20, (12, 12, 3)), 0, 255).astype(np.uint8)
            (tmp_path / "folders" / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(tmp_path / "folders" / split / f"{k}.png")
    raw = tiny_raw_params("translation")
    raw["experiments"]["tiny_trans"]["data"] = {"name": "folders", "root": str(tmp_path / "folders"), "image_size": 16}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    root = tmp_path / "repo"
    for stage in ("prepare", "evalnets", "gan", "evaluate"):
        result = CliRunner().invoke(app, [stage, "-e", "tiny_trans", "-p", str(params), "--root", str(root)])
        assert result.exit_code == 0, (stage, result.output)
    summary = json.loads((root / "metrics" / "tiny_trans.json").read_text())
    assert "fid_domain_classifier_features" in summary["translation"]["AtoB"]
    assert "label_error" not in summary["translation"]["AtoB"] and summary["label_name"] is None
    assert not (root / "models" / "tiny_trans" / "eval_nets" / "regressor.pt").exists()
    assert summary["thresholds"] == {"reads_as_target": 0.5}
    assert "label_error" not in (root / "metrics" / "tiny_trans.md").read_text()
