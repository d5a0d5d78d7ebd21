"""The GAN kinds of pipeline.gan.kinds: each loss term against a hand computation, S3GAN's rotation
and pseudo-labels, the kept label share, the DCGAN nets, and every kind training in the one loop."""

import copy
import math

import pytest
import torch
import yaml

from pipeline.errors import ParamsError
from pipeline.gan.kinds import INFO_CONTINUOUS, KINDS, ROTATION_D, ROTATION_G, label_mask, objective, rotate
from pipeline.gan.train import ClassConditioning, CodeConditioning, DBatch, GanState, train_gan
from pipeline.gan.variants import class_setup
from pipeline.nets import build_gan
from pipeline.nets.gan import Discriminator
from pipeline.params import GanParams, validate

K = 3
NO_X = torch.zeros(0)  # the images D saw: no kind here reads them


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def ce(logits: list[float], target: int) -> float:
    """Cross-entropy of one row, by hand."""
    return math.log(sum(math.exp(v) for v in logits)) - logits[target]


def params(kind: str, **kw) -> GanParams:
    return GanParams(kind=kind, loss="bce", **kw)


def batch(y_real: list[int], y_fake: list[int]) -> DBatch:
    yr, yf = torch.tensor(y_real), torch.tensor(y_fake)
    return DBatch(torch.zeros(len(yr), 1, 4, 4), yr, yf, yf)


def test_acgan_adds_the_auxiliary_cross_entropy_on_reals_and_fakes():
    obj = objective(params("acgan"), K)
    out = torch.tensor([[0.5, 1.0, 0.0, -1.0], [-0.3, 0.2, 2.0, 0.1], [1.5, 0.0, 0.0, 3.0]])  # 1 real, 2 fakes
    b = batch([0], [1, 2])
    bce = softplus(-0.5) + (softplus(-0.3) + softplus(1.5)) / 2  # -log sigmoid(real), -log(1 - sigmoid(fake))
    aux = ce([1.0, 0.0, -1.0], 0) + (ce([0.2, 2.0, 0.1], 1) + ce([0.0, 0.0, 3.0], 2)) / 2
    assert obj.d_loss(out, b, torch.zeros(3, 4), NO_X).item() == pytest.approx(bce + aux, rel=1e-6)
    g = obj.g_loss(out[1:], torch.tensor([1, 2]), torch.zeros(2, 4))
    want = (softplus(0.3) + softplus(-1.5)) / 2 + (ce([0.2, 2.0, 0.1], 1) + ce([0.0, 0.0, 3.0], 2)) / 2
    assert g.item() == pytest.approx(want, rel=1e-6)


def test_2ngan_targets_real_class_2y_and_fake_class_2y_plus_1():
    obj = objective(params("2ngan"), K)
    torch.manual_seed(0)
    out = torch.randn(2, 1 + 2 * K)  # one real of class 2, one fake of class 1
    b = batch([2], [1])
    rows = out[:, 1:].tolist()
    adv = softplus(-out[0, 0].item()) + softplus(out[1, 0].item())
    assert obj.d_loss(out, b, torch.zeros(2, 4), NO_X).item() == pytest.approx(
        adv + ce(rows[0], 4) + ce(rows[1], 3), rel=1e-6
    )
    g = obj.g_loss(out[1:], torch.tensor([1]), torch.zeros(1, 4))
    assert g.item() == pytest.approx(softplus(-out[1, 0].item()) + ce(rows[1], 2) - ce(rows[1], 3), rel=1e-6)


def test_infogan_mutual_information_terms():
    p = params("infogan", info_continuous=2)
    obj = objective(p, K)
    z = torch.tensor([[0.5, -1.0, 9.0], [2.0, 0.0, 9.0]])  # the continuous codes are z[:, :2]
    q = [[1.0, 0.0, 0.0, 0.7, -0.5], [0.0, 2.0, 1.0, 1.0, 1.0]]  # K categorical logits, 2 continuous predictions
    out = torch.tensor([[0.0, *q[0]], [0.0, *q[1]]])
    c = torch.tensor([0, 2])
    mse = ((0.7 - 0.5) ** 2 + (-0.5 + 1.0) ** 2 + (1.0 - 2.0) ** 2 + (1.0 - 0.0) ** 2) / 4
    info = (ce(q[0][:3], 0) + ce(q[1][:3], 2)) / 2 + INFO_CONTINUOUS * mse
    assert obj.g_loss(out, c, z).item() == pytest.approx(2 * softplus(0.0) / 2 + info, rel=1e-6)
    # in the D step the same terms are taken on the fakes (rows after the reals), at their codes y_gen
    real = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    d = obj.d_loss(torch.cat([real, out]), batch([1], [0, 2]), z, NO_X)
    assert d.item() == pytest.approx(softplus(-1.0) + softplus(0.0) + info, rel=1e-6)


def quarter_turn(img: torch.Tensor) -> torch.Tensor:
    """A quarter turn anticlockwise of a (C, n, n) image, pixel by pixel: out[r, c] = in[c, n-1-r]."""
    n = img.shape[-1]
    out = torch.empty_like(img)
    for r in range(n):
        for c in range(n):
            out[:, r, c] = img[:, c, n - 1 - r]
    return out


def test_rotate_turns_image_i_by_i_mod_4_quarter_turns():
    x = torch.arange(6 * 2 * 3 * 3, dtype=torch.float).view(6, 2, 3, 3)
    rotated, r = rotate(x)
    assert r.tolist() == [0, 1, 2, 3, 0, 1]
    for i in range(6):
        want = x[i]
        for _ in range(i % 4):
            want = quarter_turn(want)
        assert torch.equal(rotated[i], want)


def test_s3gan_losses_rotation_and_class_terms():
    obj = objective(params("s3gan", label_fraction=0.5), K)
    torch.manual_seed(1)
    x_real, x_fake = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)
    b = DBatch(x_real, torch.tensor([0, -1, 2, -1]), torch.tensor([1, 1, 0, 2]), torch.tensor([1, 1, 0, 2]))
    x, y = obj.d_input(b, x_fake)
    assert torch.equal(x[:4], x_real) and torch.equal(x[4:8], x_fake)
    assert torch.equal(
        x[8:],
        torch.stack(
            [
                x_real[0],
                quarter_turn(x_real[1]),
                quarter_turn(quarter_turn(x_real[2])),
                quarter_turn(quarter_turn(quarter_turn(x_real[3]))),
            ]
        ),
    )
    assert y.tolist() == [0, -1, 2, -1, 1, 1, 0, 2, 0, -1, 2, -1]
    out = torch.randn(12, 1 + 4 + K)
    rows = out.tolist()
    adv = sum(softplus(-rows[i][0]) for i in range(4)) / 4 + sum(softplus(rows[i][0]) for i in range(4, 8)) / 4
    rotation = sum(ce(rows[8 + i][1:5], i % 4) for i in range(4)) / 4
    cls = (ce(rows[0][5:], 0) + ce(rows[2][5:], 2)) / 2  # the labelled reals only
    got = obj.d_loss(out, b, torch.zeros(4, 4), x).item()
    assert got == pytest.approx(adv + ROTATION_D * rotation + cls, rel=1e-5)
    out2 = out.clone()
    out2[[1, 3], 5:] += 5.0  # the unlabelled reals' class logits do not enter the loss
    assert obj.d_loss(out2, b, torch.zeros(4, 4), x).item() == pytest.approx(got, rel=1e-6)

    xg, yg = obj.g_input(x_fake, torch.tensor([1, 1, 0, 2]))
    assert torch.equal(xg[4:], rotate(x_fake)[0]) and yg.tolist() == [1, 1, 0, 2] * 2
    og = torch.randn(8, 1 + 4 + K)
    rg = og.tolist()
    want = (
        sum(softplus(-rg[i][0]) for i in range(4)) / 4 + ROTATION_G * sum(ce(rg[4 + i][1:5], i) for i in range(4)) / 4
    )
    assert obj.g_loss(og, torch.tensor([1, 1, 0, 2]), torch.zeros(4, 4)).item() == pytest.approx(want, rel=1e-5)


def test_s3gan_pseudo_labels_are_the_class_heads_argmax_with_no_gradient():
    torch.manual_seed(0)
    D = Discriminator(8, 1, 8, label_input="class", num_classes=K, semi=True)
    x = torch.randn(5, 1, 8, 8)
    out = D(x, torch.full((5,), -1))
    guess = out[:, 5:].argmax(1)
    assert out.shape == (5, 1 + 4 + K)
    assert torch.allclose(out[:, 0], D(x, guess)[:, 0])  # the unlabelled take the head's guess as their label
    assert not torch.allclose(out[:, 0], D(x, (guess + 1) % K)[:, 0])
    out[:, 0].sum().backward()  # the projection logit sends no gradient into the class head
    head = D.semi.parametrizations.weight.original
    assert head.grad is None or torch.count_nonzero(head.grad) == 0
    assert D.embed.parametrizations.weight.original.grad is not None  # but the projection is trained


def test_label_mask_keeps_exactly_that_share_of_each_class():
    y = torch.tensor([0] * 10 + [1] * 20 + [2] * 33)[torch.randperm(63, generator=torch.Generator().manual_seed(0))]
    keep = label_mask(y, 0.2, seed=0)
    assert [int(keep[y == c].sum()) for c in range(3)] == [2, 4, 7]  # round(0.2 x 33) = 7
    assert torch.equal(keep, label_mask(y, 0.2, seed=0))
    assert not torch.equal(keep, label_mask(y, 0.2, seed=1))
    assert [int(label_mask(y, 0.01, seed=0)[y == c].sum()) for c in range(3)] == [1, 1, 1]  # at least one


def test_class_setup_uses_labels_as_each_kind_does():
    x, y = torch.randn(40, 1, 8, 8), torch.arange(40) % 4
    net = {"arch": "sngan", "data_shape": (1, 8, 8), "z_dim": 4, "g_width": 8, "d_width": 8}
    alone = class_setup(GanParams(label_fraction=0.25), net, x, y, 4, seed=0).cond
    assert isinstance(alone, ClassConditioning) and len(alone.x) == 12  # the labelled images only (3 of 10 per class)
    semi = class_setup(GanParams(kind="s3gan", label_fraction=0.25), net, x, y, 4, seed=0).cond
    assert len(semi.x) == 40 and int((semi.y >= 0).sum()) == 12 and semi.semi
    assert torch.equal(semi.y >= 0, torch.isin(torch.arange(40), torch.nonzero(label_mask(y, 0.25, 0)).squeeze(1)))
    b = semi.d_batch(64)  # fakes get uniformly drawn classes, never -1
    assert (b.y_gen >= 0).all() and (b.y_real < 0).any()
    codes = class_setup(GanParams(kind="infogan"), net, x, y, 4, seed=0).cond
    assert isinstance(codes, CodeConditioning)
    b = codes.d_batch(200)
    assert torch.equal(b.y_real, b.y_gen) and set(b.y_gen.tolist()) == {0, 1, 2, 3}


def test_dcgan_nets():
    G, D = build_gan(
        "dcgan", data_shape=(3, 16, 16), z_dim=6, g_width=8, d_width=8, label_input="onehot", num_classes=K
    )
    z, y = torch.randn(4, 6), torch.tensor([0, 1, 2, 0])
    x = G(z, y)
    assert x.shape == (4, 3, 16, 16) and x.abs().max() <= 1
    assert D(x, y).shape == (4,)
    assert not torch.allclose(D(x, y), D(x, (y + 1) % K))  # cDCGAN: D sees the label
    _, D_aux = build_gan(
        "dcgan", data_shape=(1, 8, 8), z_dim=6, g_width=8, d_width=8, label_input="onehot", d_label_input="none",
        num_classes=K, d_aux=2 * K,
    )  # fmt: skip
    x = torch.randn(4, 1, 8, 8)
    assert D_aux(x, y).shape == (4, 1 + 2 * K) and torch.equal(D_aux(x, y), D_aux(x, torch.zeros_like(y)))
    G0, _ = build_gan("dcgan", data_shape=(1, 8, 8), z_dim=6, g_width=8, d_width=8, label_input="none")
    assert torch.equal(G0.eval()(z, y), G0(z, torch.zeros_like(y)))  # DCGAN: G ignores the label


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_trains_in_the_one_loop_and_resumes(kind):
    x, y = torch.rand(48, 1, 8, 8) * 2 - 1, torch.arange(48) % K
    p = GanParams(
        kind=kind, loss="hinge", z_dim=4, g_width=8, d_width=8, **({"label_fraction": 0.5} if kind == "s3gan" else {})
    )
    net = {"arch": "sngan", "data_shape": (1, 8, 8), "z_dim": 4, "g_width": 8, "d_width": 8}
    setup = class_setup(p, net, x, y, K, seed=0)

    saved: list[dict] = []

    def run(state: dict | None = None) -> GanState:
        torch.manual_seed(0)
        G, D = build_gan(**setup.build_args)
        fresh = GanState.create(G, D, 1e-3, 1e-3, (0.5, 0.9))
        if state is not None:
            fresh.load_state_dict(state)
        kw = {"z_dim": 4, "n_dis": 1, "batch_size": 8, "ema_decay": 0.9, "ema_start": 1, "log_every": 2}
        return train_gan(
            fresh,
            setup.cond,
            objective=objective(p, K),
            steps=4,
            checkpoint_every=2,
            on_checkpoint=lambda s: saved.append(copy.deepcopy(s.state_dict())),
            **kw,
        )

    whole = run()
    assert all(math.isfinite(r["d_loss"]) and math.isfinite(r["g_loss"]) for r in whole.history)
    resumed = run(saved[0])  # from the checkpoint at step 2
    for a, b in zip(
        [*whole.G.parameters(), *whole.D.parameters()], [*resumed.G.parameters(), *resumed.D.parameters()], strict=True
    ):
        assert torch.equal(a, b)


def _raw(gan: dict, task: str = "ganzoo") -> dict:
    exp = {"task": task, "gan": gan}
    if task == "ganzoo":
        return {"groups": {"ganzoo": ["z"]}, "experiments": {"z": exp}}
    return {"groups": {"kd": ["z"], "classification": ["z"]}, "experiments": {"z": exp}}


def test_params_check_kinds_and_variants():
    zoo = validate(_raw({"loss": "bce", "variants": {"a": {"kind": "acgan"}, "s": {"kind": "s3gan", "loss": "hinge"}}}))
    gan = zoo.experiment("z").gan
    assert gan.variant("a").loss == "bce" and gan.variant("s").loss == "hinge" and gan.variant("s").kind == "s3gan"
    with pytest.raises(ParamsError, match=r"experiments\.z\.gan: variants\.a\.beta1: .*less than 1"):
        validate(_raw({"variants": {"a": {"kind": "acgan", "beta1": 2}}}))
    with pytest.raises(ParamsError, match=r"variants\.a\.kindd: unknown key"):
        validate(_raw({"variants": {"a": {"kindd": "acgan"}}}))
    with pytest.raises(ParamsError, match=r"variants\.a\.kind: .*unknown GAN kind 'wgan'"):
        validate(_raw({"variants": {"a": {"kind": "wgan"}}}))
    with pytest.raises(ParamsError, match=r"gan: variants\.a\.compile: only kind projection runs compiled, not acgan$"):
        validate(_raw({"variants": {"a": {"kind": "acgan", "compile": True}}}))
    with pytest.raises(ParamsError, match=r"gan: variants\.i\.label_fraction: kind infogan uses no labels$"):
        validate(_raw({"variants": {"i": {"kind": "infogan", "label_fraction": 0.5}}}))
    with pytest.raises(ParamsError, match="gan.kind dcgan is unconditional"):
        validate(_raw({"kind": "dcgan"}, task="classification"))
    with pytest.raises(ParamsError, match="kind s3gan: continuous labels train CcGANs"):
        validate(
            {
                "groups": {"simulation": ["c"], "continuous": ["c"]},
                "experiments": {"c": {"task": "circle", "gan": {"kind": "s3gan"}}},
            }
        )


@pytest.mark.parametrize("gan", [{"kind": "acgan", "loss": "bce"}, {"kind": "s3gan", "label_fraction": 0.5}])
def test_any_conditional_kind_generates_cgan_kd_fakes(tmp_path, gan):
    from pipeline.artifacts import Paths, load_gan, load_synthetic
    from tests.conftest import build_experiment

    stages = ["prepare", "teacher", "gan", "features", "dre", "synthesize"]
    _, root = build_experiment(tmp_path, "classification", "tiny", stages, **gan)
    paths = Paths("tiny", root)
    arch = load_gan(paths.generator("cgan"))["arch"]
    assert arch["arch"] == ("dcgan" if gan["kind"] == "acgan" else "sngan") and arch.get("semi", False) == (
        gan["kind"] == "s3gan"
    )
    x, y = load_synthetic(paths)
    assert len(x) == len(y) > 0 and x.shape[1:] == (1, 8, 8)


def test_ganzoo_generate_and_the_commands_that_do_not_apply(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app
    from tests.conftest import build_experiment

    params, root = build_experiment(tmp_path, "ganzoo", "tiny_zoo", ["prepare"])
    raw = yaml.safe_load(params.read_text())
    raw["experiments"]["tiny_zoo"]["gan"]["variants"] = {"acgan": {"kind": "acgan"}, "info": {"kind": "infogan"}}
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    common = ["-e", "tiny_zoo", "-p", str(params), "--root", str(root)]
    assert CliRunner().invoke(app, ["gan", *common]).exit_code == 0
    out = tmp_path / "fakes"
    result = CliRunner().invoke(app, ["generate", *common, "--variant", "acgan", "-l", "2", "-l", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    fakes = torch.load(out.with_suffix(".pt"))
    assert fakes["x"].shape == (16, 1, 8, 8) and fakes["y"].tolist() == [2] * 8 + [4] * 8
    assert out.with_suffix(".png").is_file()
    result = CliRunner().invoke(app, ["generate", *common, "--subsample", "cdre", "-o", str(out)])
    assert result.exit_code == 2 and "a ganzoo experiment has no ratio nets" in result.output
    result = CliRunner().invoke(app, ["tune", "n-fake", *common, "--n-trials", "1"])
    assert result.exit_code == 2 and "which a ganzoo experiment does not have" in result.output
