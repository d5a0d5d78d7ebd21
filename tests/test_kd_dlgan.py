"""KD-DLGAN and data-limited training: AGKD's four L1 terms and CGKD's correlation loss against a
hand computation, the encoder frozen through a training step, the encoders' one-line errors, the
data share per class, DiffAugment's cutout, and the over-fitting gap."""

import math

import pytest
import torch
import yaml
from torch import nn

from pipeline.augment import diff_augment, random_cutout
from pipeline.errors import ParamsError
from pipeline.gan.encoders import FrozenEncoder, encoder_dim, encoder_file, load_encoder
from pipeline.gan.kd_dlgan import KdDlGan, agkd, cgkd, class_prototypes
from pipeline.gan.kinds import objective
from pipeline.gan.train import ClassConditioning, DBatch, GanState, d_step, train_gan
from pipeline.gan.variants import class_setup, gan_images
from pipeline.nets import build_gan
from pipeline.params import GanParams, KdDlGanParams, validate
from pipeline.stages.evaluate_zoo import d_gap


def l1(a: list[float], b: list[float]) -> float:
    return sum(abs(u - v) for u, v in zip(a, b, strict=True)) / len(a)


def test_agkd_is_the_four_l1_terms_with_the_crossed_ones_where_drawn():
    torch.manual_seed(0)
    ir, fr, i_f, ff = (torch.randn(3, 4) for _ in range(4))
    crossed = torch.tensor([True, False, True])
    R, FR, I_F, FF = (t.tolist() for t in (ir, fr, i_f, ff))
    by_hand = 0.0
    for k in range(3):
        by_hand += l1(R[k], FR[k]) + l1(I_F[k], FF[k])
        if crossed[k]:
            by_hand += l1(R[k], FF[k]) + l1(I_F[k], FR[k])
    assert agkd(ir, fr, i_f, ff, crossed).item() == pytest.approx(by_hand / 3, rel=1e-6)
    # no crossed pair: only the direct terms
    direct = sum(l1(R[k], FR[k]) + l1(I_F[k], FF[k]) for k in range(3)) / 3
    assert agkd(ir, fr, i_f, ff, torch.zeros(3, dtype=torch.bool)).item() == pytest.approx(direct, rel=1e-6)


def test_cgkd_is_the_squared_distance_of_row_normalised_correlations():
    T = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])  # 3 prototypes, d = 2
    i = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    f = torch.tensor([[0.5, 0.5], [1.0, 1.0]])

    def corr(v: list[float]) -> list[float]:
        c = [v[0] * t[0] + v[1] * t[1] for t in T.tolist()]
        norm = math.sqrt(sum(x * x for x in c))
        return [x / norm for x in c]

    by_hand = sum(
        sum((a - b) ** 2 for a, b in zip(corr(iv), corr(fv), strict=True))
        for iv, fv in zip(i.tolist(), f.tolist(), strict=True)
    )
    assert cgkd(i, f, T).item() == pytest.approx(by_hand / 2, rel=1e-6)
    assert cgkd(i, i * 3.0, T).item() == pytest.approx(0.0, abs=1e-7)  # the correlations ignore the scale


class Linear(nn.Module):
    """A stand-in encoder: a fixed linear map of the flattened image."""

    def __init__(self, d_in: int, d: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d_in, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def _kd_objective(agkd_w: float, cgkd_w: float, p: float, d: int = 3) -> tuple[KdDlGan, nn.Module]:
    torch.manual_seed(1)
    enc = Linear(16, d)
    protos = torch.randn(2, d)
    inner = objective(GanParams(loss="hinge"), 2)
    frozen = FrozenEncoder(enc, enc)
    return KdDlGan(inner, frozen, protos, agkd_weight=agkd_w, cgkd_weight=cgkd_w, p=p), enc


def test_kd_dlgan_adds_both_terms_to_the_inner_loss_on_the_images_d_saw():
    obj, enc = _kd_objective(0.5, 2.0, p=1.0)
    n, d = 2, 3
    x = torch.randn(2 * n, 1, 4, 4)
    y = torch.tensor([0, 1])
    batch = DBatch(x[:n], y, y, y)
    out = torch.randn(2 * n, 1 + d)
    with torch.no_grad():
        i = enc(x)
    inner = obj.inner.d_loss(out[:, 0], batch, torch.zeros(n, 4), x)
    f = out[:, 1:]
    want = inner + 0.5 * agkd(i[:n], f[:n], i[n:], f[n:], torch.ones(n, dtype=torch.bool))
    want = want + 2.0 * cgkd(i, f, obj.prototypes)
    assert obj.d_loss(out, batch, torch.zeros(n, 4), x).item() == pytest.approx(want.item(), rel=1e-6)
    # G's loss ignores D_f's columns
    assert obj.g_loss(out[:n], y, torch.zeros(n, 4)).item() == pytest.approx(
        obj.inner.g_loss(out[:n, 0], y, torch.zeros(n, 4)).item()
    )


def test_the_encoder_stays_frozen_through_a_training_step():
    torch.manual_seed(0)
    obj, enc = _kd_objective(1.0, 1.0, p=0.5)
    G, D = build_gan("sngan", data_shape=(1, 8, 8), z_dim=8, g_width=8, d_width=8, num_classes=2, d_features=3)
    lin = Linear(64, 3)
    obj.encoder = FrozenEncoder(lin, lin)
    before = {k: v.clone() for k, v in obj.encoder.state_dict().items()}
    d_before = {k: v.clone() for k, v in D.state_dict().items()}
    assert all(not p.requires_grad for p in obj.encoder.parameters())
    state = GanState.create(G, D, 1e-3, 1e-3, (0.0, 0.9))
    x, y = torch.rand(16, 1, 8, 8) * 2 - 1, torch.arange(16) % 2
    d_step(G, D, state.opt_d, obj, DBatch(x[:4], y[:4], y[:4], y[:4]), torch.randn(4, 8))
    assert all(p.grad is None for p in obj.encoder.parameters())
    assert all(torch.equal(before[k], v) for k, v in obj.encoder.state_dict().items())
    assert not torch.equal(d_before["kd.weight"], D.state_dict()["kd.weight"])  # D_f did learn
    obj.encoder.train()  # a stage putting nets in training mode leaves the encoder in eval mode
    assert not obj.encoder.module.training


def test_training_with_kd_dlgan_runs_and_d_has_the_encoder_width():
    torch.manual_seed(0)
    obj, _ = _kd_objective(1.0, 1.0, p=0.5)
    lin = Linear(64, 3)
    obj.encoder = FrozenEncoder(lin, lin)
    G, D = build_gan("sngan", data_shape=(1, 8, 8), z_dim=8, g_width=8, d_width=8, num_classes=2, d_features=3)
    assert D(torch.zeros(5, 1, 8, 8), torch.zeros(5, dtype=torch.long)).shape == (5, 4)
    x, y = torch.rand(16, 1, 8, 8) * 2 - 1, torch.arange(16) % 2
    state = GanState.create(G, D, 1e-3, 1e-3, (0.0, 0.9))
    train_gan(
        state, ClassConditioning(x, y, 2), objective=obj, z_dim=8, steps=3, n_dis=1, batch_size=4,
        ema_decay=0.0, ema_start=0, augment=lambda t: diff_augment(t, 1, 0.5),
    )  # fmt: skip
    assert state.step == 3 and all(math.isfinite(r["d_loss"]) for r in state.history)


def test_a_missing_encoder_file_is_one_line_naming_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "clip.pt"
    kd = KdDlGanParams(encoder=str(missing), format="torchscript")
    with pytest.raises(ParamsError) as err:
        encoder_file(kd, None)
    assert str(missing) in str(err.value) and "\n" not in str(err.value)


def test_open_clip_without_the_package_is_one_line(tmp_path):
    f = tmp_path / "clip.bin"
    f.write_bytes(b"x")
    kd = KdDlGanParams(encoder=str(f), format="open_clip", open_clip_model="ViT-B-32")
    try:
        import open_clip  # noqa: F401
    except ImportError:
        with pytest.raises(ParamsError, match="open_clip_torch package") as err:
            load_encoder(kd, f, 1, ("0", "1"))
        assert "\n" not in str(err.value)
    else:  # pragma: no cover - the package is not a dependency
        pytest.skip("open_clip is installed")


def test_a_torchscript_encoder_is_loaded_frozen_and_resized(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "enc.pt"
    torch.jit.script(Linear(3 * 12 * 12, 5)).save(str(path))
    kd = KdDlGanParams(encoder=str(path), format="torchscript", image_size=12)
    enc, text = load_encoder(kd, path, 1, ("a", "b"))
    assert text is None and encoder_dim(enc, (1, 8, 8)) == 5  # grey 8x8 -> 3 x 12 x 12
    assert all(not p.requires_grad for p in enc.parameters())
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not torchscript")
    with pytest.raises(ParamsError, match="not a TorchScript file"):
        load_encoder(KdDlGanParams(encoder=str(bad), format="torchscript"), bad, 1, ("a", "b"))


def test_prototypes_are_class_means_of_the_labelled_images():
    x = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0], [7.0, 7.0]]).view(4, 2, 1, 1)
    y = torch.tensor([0, 0, 1, -1])  # -1: unlabelled, left out
    T = class_prototypes(lambda t: t.flatten(1), x, y, 2)
    assert T.tolist() == [[2.0, 1.0], [5.0, 5.0]]


def test_data_fraction_keeps_exactly_that_share_per_class():
    y = torch.cat([torch.full((n,), c) for c, n in enumerate([40, 25, 96])])
    x = torch.arange(len(y)).float().view(-1, 1, 1, 1)
    for fraction in (0.1, 0.25):
        xs, ys = gan_images(GanParams(data_fraction=fraction), x, y, seed=3)
        counts = torch.bincount(ys, minlength=3).tolist()
        assert counts == [max(1, int(fraction * n + 0.5)) for n in (40, 25, 96)]
        assert torch.equal(y[xs.view(-1).long()], ys)  # images keep their labels
    small, _ = gan_images(GanParams(data_fraction=0.1), x, y, seed=3)
    large, _ = gan_images(GanParams(data_fraction=0.25), x, y, seed=3)
    assert set(small.view(-1).tolist()) <= set(large.view(-1).tolist())  # 10% within 25%: nested draws
    setup = class_setup(GanParams(data_fraction=0.1), {"arch": "sngan"}, x, y, 3, seed=3)
    assert torch.equal(setup.cond.x, small)  # the GAN trains on exactly those


def test_cutout_zeroes_one_clipped_square_per_image_and_passes_gradients():
    torch.manual_seed(0)
    x = torch.ones(50, 1, 8, 8, requires_grad=True)
    out = random_cutout(x, 0.5)
    zeros = (out == 0).sum(dim=(1, 2, 3))
    assert zeros.max() == 16 and zeros.min() >= 4  # a 4x4 square, cut by the border at most to 2x2
    assert torch.equal(random_cutout(x, 0.0), x)
    out.sum().backward()
    assert torch.equal(x.grad, (out != 0).float())


def test_params_refuse_kd_dlgan_without_a_term_or_its_teacher():
    with pytest.raises(ValueError, match="agkd and cgkd are both 0"):
        KdDlGanParams(agkd=0, cgkd=0)
    raw = {
        "groups": {"ganzoo": ["z"]},
        "experiments": {"z": {"task": "ganzoo", "gan": {"variants": {"a": {"kd_dlgan": {"agkd": 1.0}}}}}},
    }
    with pytest.raises(ParamsError, match=r"experiments\.z\.gan: kd_teacher: variant a distils"):
        validate(raw)
    raw["experiments"]["z"]["gan"]["kd_teacher"] = {"net": "cnn", "width": 8}
    assert validate(raw).experiments["z"].gan.needs_kd_teacher


def test_d_gap_is_the_mean_logit_on_seen_minus_held_out_reals():
    class Fixed(nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return x.flatten(1).sum(1) + y.float()

    seen, held = torch.ones(4, 1, 1, 1) * 2, torch.zeros(3, 1, 1, 1)
    gap = d_gap(Fixed(), seen, torch.zeros(4, dtype=torch.long), held, torch.ones(3, dtype=torch.long))
    assert gap == pytest.approx(2.0 - 1.0)
    unlabelled = d_gap(Fixed(), seen, torch.zeros(4, dtype=torch.long), held, torch.ones(3, dtype=torch.long), False)
    assert unlabelled == pytest.approx(2.0)  # a D without labels is handed zeros, whatever the labels were


def test_classification_gan_distils_its_teacher(tmp_path):
    from typer.testing import CliRunner

    from pipeline.artifacts import Paths, load_classifier, load_gan
    from pipeline.cli import app
    from tests.conftest import build_experiment

    kd = {"kd_dlgan": {"agkd": 1.0, "cgkd": 0.5}, "augment_shift": 1, "augment_cutout": 0.5, "data_fraction": 0.5}
    params, root = build_experiment(tmp_path, "classification", "tiny", ["prepare", "teacher", "gan"], **kd)
    paths = Paths("tiny", root)
    ckpt = load_gan(paths.generator("cgan"))
    assert ckpt["arch"]["d_features"] == load_classifier(paths.teacher).feature_dim
    assert '"encoder"' in ckpt["config"] and '"data_fraction": 0.5' in ckpt["config"]
    # another run's encoder file that is not there: one line naming it, exit code 2, nothing trained
    raw = yaml.safe_load(params.read_text())
    missing = tmp_path / "runs" / "clip_b32.pt"
    raw["experiments"]["tiny"]["gan"]["kd_dlgan"] = {"encoder": str(missing), "format": "torchscript"}
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = CliRunner().invoke(app, ["gan", "-e", "tiny", "-p", str(params), "--root", str(root)])
    assert result.exit_code == 2 and str(missing) in result.output
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output


def test_ganzoo_trains_its_kd_teacher_once_and_reports_the_gap(tmp_path):
    from typer.testing import CliRunner

    from pipeline.artifacts import Paths, read_json
    from pipeline.cli import app
    from tests.conftest import build_experiment

    params, root = build_experiment(tmp_path, "ganzoo", "tiny_zoo", ["prepare", "teacher"])
    raw = yaml.safe_load(params.read_text())
    gan = raw["experiments"]["tiny_zoo"]["gan"]
    gan["kd_teacher"] = dict(raw["experiments"]["tiny_zoo"]["teacher"])
    gan["variants"] = {
        "plain": {"kind": "projection", "data_fraction": 0.5},
        "kd": {"kind": "projection", "data_fraction": 0.5, "kd_dlgan": {"cgkd": 0.0}},
    }
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    common = ["-e", "tiny_zoo", "-p", str(params), "--root", str(root)]
    assert CliRunner().invoke(app, ["gan", *common]).exit_code == 0
    paths = Paths("tiny_zoo", root)
    stamp = paths.kd_teacher.stat().st_mtime_ns
    result = CliRunner().invoke(app, ["gan", *common])
    assert result.exit_code == 0 and paths.kd_teacher.stat().st_mtime_ns == stamp  # not retrained
    result = CliRunner().invoke(app, ["evaluate", *common])
    assert result.exit_code == 0, result.output
    summary = read_json(paths.summary_json)
    assert summary["variants"]["kd"] == {
        "kind": "projection",
        "label_fraction": 1.0,
        "data_fraction": 0.5,
        "diffaug": False,
        "kd_dlgan": "agkd",
    }
    assert all(math.isfinite(summary["gan"][v]["d_gap"]) for v in ("plain", "kd"))
    assert "kd (projection, 100% labels, 50% data, AGKD)" in paths.summary_md.read_text()


def test_checkpoint_configs_leave_out_options_at_their_defaults():
    """A GAN trained before data_fraction, augment_cutout and kd_dlgan existed keeps its config
    (and so resumes instead of retraining); set, they enter it."""
    import json

    from pipeline.params import GAN_CONFIG_DEFAULTS
    from pipeline.stages.gan import _config

    x, y = torch.zeros(2, 1, 1, 1), torch.zeros(2, dtype=torch.long)
    plain = json.loads(_config(GanParams(), 0, x, y, variant="v"))
    assert not set(GAN_CONFIG_DEFAULTS) & set(plain["gan"])
    kd = json.loads(_config(GanParams(data_fraction=0.1, kd_dlgan=KdDlGanParams()), 0, x, y, variant="v"))
    assert kd["gan"]["data_fraction"] == 0.1 and kd["gan"]["kd_dlgan"]["agkd"] == 1.0
