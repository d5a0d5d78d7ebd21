"""Density-ratio subsampling: the Softplus loss, psi on a known ratio, rejection sampling, the window."""

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from pipeline.subsample.autoencoder import SparseAutoencoder
from pipeline.subsample.features import sparse_ae_loss
from pipeline.subsample.ratio import RatioNet, fake_feature_pool, fake_features, ratio, softplus_dre_loss, train_ratio
from pipeline.subsample.sampling import collect, rejection_sample, window_mask
from pipeline.subsample.subsampler import Subsampler, draw


def test_softplus_loss_by_hand():
    psi_real = torch.tensor([0.0, 2.0])
    psi_fake = torch.tensor([1.0, 3.0, 0.5])
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    sp = lambda t: math.log(1 + math.exp(t))  # noqa: E731
    fake = sum(sig(t) * t - sp(t) for t in (1.0, 3.0, 0.5)) / 3
    real = (sig(0.0) + sig(2.0)) / 2
    mean_fake = (1.0 + 3.0 + 0.5) / 3
    want = fake - real + 0.1 * (mean_fake - 1) ** 2
    assert abs(float(softplus_dre_loss(psi_real, psi_fake, penalty=0.1)) - want) < 1e-6
    # the penalty vanishes when the fakes' mean ratio is 1
    assert (
        abs(
            float(
                softplus_dre_loss(psi_real, torch.tensor([0.5, 1.5]), 5.0)
                - softplus_dre_loss(psi_real, torch.tensor([0.5, 1.5]), 0.0)
            )
        )
        < 1e-7
    )


def test_softplus_loss_is_minimised_at_the_true_ratio():
    """Pointwise, q [sig(t) t - sp(t)] - p sig(t) is smallest at t = p / q."""
    p, q = 0.3, 0.1
    t = torch.linspace(0.01, 10, 2000)
    value = q * (torch.sigmoid(t) * t - F.softplus(t)) - p * torch.sigmoid(t)
    assert abs(float(t[value.argmin()]) - p / q) < 0.02


def test_sparse_autoencoder_loss_by_hand():
    x, x_hat = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 2.0]])
    h = torch.tensor([[0.0, 4.0]])
    y, y_hat = torch.tensor([0.5]), torch.tensor([0.25])
    want = 0.5 + 1e-3 * 2.0 + 0.0625
    assert abs(float(sparse_ae_loss(x, x_hat, h, y, y_hat, 1e-3)) - want) < 1e-7
    for shape in ((2,), (1, 16, 16), (3, 32, 32)):
        ae = SparseAutoencoder(shape, code_dim=8, width=8)
        xb = torch.randn(4, *shape)
        rec, code, y_pred = ae.reconstruct(xb)
        assert rec.shape == xb.shape and code.shape == (4, 8) and (code >= 0).all() and y_pred.shape == (4,)


def _gaussians(n: int):
    """Fakes N(0, 1), reals N(1, 1): r(x) = exp(x - 1/2)."""
    return torch.randn(n, 1) + 1.0, torch.randn(n, 1)


def test_trained_psi_ranks_a_known_ratio():
    torch.manual_seed(0)
    real, fake = _gaussians(4000)
    net = RatioNet(1, width=32, depth=2, dropout=0.0)
    train_ratio(
        net,
        real,
        torch.zeros(len(real), dtype=torch.long),
        fake.view(len(fake), 1, 1),
        penalty=0.01,
        steps=600,
        batch_size=256,
        lr=3e-3,
        weight_decay=0.0,
    )
    grid = torch.linspace(-1.5, 2.5, 41)[:, None]
    psi = ratio(net, grid)
    true = torch.exp(grid[:, 0] - 0.5)
    # ranks agree (Spearman's rho) and the scale is right where the mass is
    rank = lambda t: t.argsort().argsort().float()  # noqa: E731
    rho = float(torch.corrcoef(torch.stack([rank(psi), rank(true)]))[0, 1])
    assert rho > 0.95, rho
    mid = (grid[:, 0] > -0.5) & (grid[:, 0] < 1.5)
    assert float((psi[mid] / true[mid]).log().abs().mean()) < 0.35
    # fakes drawn through the trained psi move towards the real distribution
    x, _, _, _ = collect(
        lambda y: torch.randn(len(y), 1),
        lambda x, y: (ratio(net, x), torch.ones(len(x), dtype=torch.bool)),
        torch.zeros(1, dtype=torch.long),
        4000,
        burnin=1000,
        batch_size=1000,
    )
    assert 0.75 < float(x.mean()) < 1.15


def test_psi_without_groupnorm_learns_a_radial_ratio_of_points():
    """2-D points, reals N(0, I), fakes N(0, 2^2 I): r(x) = 4 exp(-3 |x|^2 / 8) falls with the radius;
    psi without GroupNorm (the circle's setting) learns it."""
    torch.manual_seed(0)
    real, fake = torch.randn(4000, 2), 2 * torch.randn(4000, 2)
    net = RatioNet(2, width=32, depth=2, dropout=0.0, norm="none")
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in net.modules())
    train_ratio(
        net,
        real,
        torch.zeros(len(real), dtype=torch.long),
        fake.view(len(fake), 1, 2),
        penalty=0.01,
        steps=600,
        batch_size=256,
        lr=3e-3,
        weight_decay=0.0,
    )
    radius = torch.linspace(0.0, 3.0, 31)
    angle = torch.rand(31) * 6.283
    psi = ratio(net, torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1))
    true = 4 * torch.exp(-3 * radius**2 / 8)
    rank = lambda t: t.argsort().argsort().float()  # noqa: E731
    assert float(torch.corrcoef(torch.stack([rank(psi), rank(true)]))[0, 1]) > 0.9
    assert float(psi[:5].mean()) > 4 * float(psi[-5:].mean())


def test_unknown_ratio_norm_is_refused():
    with pytest.raises(ValueError, match="unknown norm 'batch'"):
        RatioNet(2, norm="batch")


def _uniform_fakes(y: torch.Tensor) -> torch.Tensor:
    return torch.rand(len(y), 1)


def _triangle_score(x: torch.Tensor, y: torch.Tensor):
    """Label 0: r(x) = 2x (reals with density 2x on [0, 1]); label 1: r(x) = 2(1 - x)."""
    t = x[:, 0]
    return torch.where(y == 0, 2 * t, 2 * (1 - t)), torch.ones(len(x), dtype=torch.bool)


def test_rejection_sampling_keeps_fakes_in_proportion_to_the_ratio():
    torch.manual_seed(0)
    n = 20000
    x, y, psi, stats = collect(_uniform_fakes, _triangle_score, torch.tensor([0, 1]), n, burnin=500, batch_size=4000)
    assert torch.equal(stats.accepted, torch.tensor([n, n])) and len(x) == 2 * n
    # accepted fakes follow the real densities 2x and 2(1 - x): means 2/3 and 1/3, and per-bin shares
    # within a few standard errors (accepting everything would give 1/2 and flat bins)
    for label, want_mean in ((0, 2 / 3), (1, 1 / 3)):
        t = x[y == label, 0]
        assert abs(float(t.mean()) - want_mean) < 0.01
        counts = torch.histc(t, bins=5, min=0, max=1)
        edges = torch.linspace(0, 1, 6)
        cdf = edges**2 if label == 0 else 1 - (1 - edges) ** 2
        expected = n * (cdf[1:] - cdf[:-1]).abs()
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 20.5, chi2  # chi-square, 4 dof: p ~ 0.0004
    # acceptance rate = E_fake[r] / M = 1 / 2; M = max psi = 2
    assert torch.allclose(stats.acceptance_rate, torch.tensor([0.5, 0.5]), atol=0.02)
    assert torch.allclose(stats.M, torch.tensor([2.0, 2.0]), atol=0.01)


def test_a_broken_sampler_fails_the_proportion_check():
    """The same check as above fails for a sampler that ignores the ratio (a test that can fail)."""
    torch.manual_seed(0)
    x, _, _, _ = collect(
        _uniform_fakes,
        lambda x, y: (torch.ones(len(x)), torch.ones(len(x), dtype=torch.bool)),
        torch.tensor([0]),
        20000,
        burnin=10,
        batch_size=4000,
    )
    assert abs(float(x.mean()) - 2 / 3) > 0.1


def test_label_window_drops_what_it_should():
    y = torch.tensor([0.5, 0.5, 0.5, 0.2])
    y_pred = torch.tensor([0.5, 0.55, 0.61, 0.09])
    assert window_mask(y_pred, y, 0.1).tolist() == [True, True, False, False]
    assert window_mask(y_pred, y, None).all()

    # in rejection sampling: a fake is x = y + noise, its predicted label is x itself
    torch.manual_seed(0)
    labels = torch.tensor([0.3, 0.7])

    def score(x, y):
        return torch.ones(len(x)), window_mask(x[:, 0], y, 0.05)

    got = []
    stats = rejection_sample(
        lambda y: y[:, None] + 0.1 * torch.randn(len(y), 1),
        score,
        labels,
        500,
        lambda x, y, psi: got.append((x, y)),
        burnin=10,
        batch_size=400,
    )
    x = torch.cat([g[0] for g in got])[:, 0]
    y = torch.cat([g[1] for g in got])
    assert ((x - y).abs() <= 0.05).all()
    # P(|N(0, 0.1^2)| > 0.05) = 0.617 of the candidates fall outside the window
    frac_out = float(stats.out_of_window.sum() / stats.proposed.sum())
    assert abs(frac_out - 0.617) < 0.03
    assert torch.equal(stats.accepted, torch.tensor([500, 500]))


def test_a_label_the_generator_cannot_serve_ends_short():
    stats = rejection_sample(
        _uniform_fakes,
        lambda x, y: (torch.ones(len(x)), y == 0),
        torch.tensor([0, 1]),
        50,
        lambda *a: None,
        burnin=5,
        batch_size=100,
        max_proposals=1000,
    )
    assert stats.accepted.tolist() == [50, 0] and int(stats.proposed[1]) >= 1000
    assert stats.summary()["n_labels_short"] == 1


def test_streaming_hands_out_bounded_chunks():
    sizes = []
    rejection_sample(
        _uniform_fakes,
        _triangle_score,
        torch.zeros(40, dtype=torch.long),
        100,
        lambda x, y, psi: sizes.append(len(x)),
        burnin=10,
        batch_size=256,
    )
    assert sum(sizes) == 4000 and max(sizes) <= 256


def test_conditional_psi_pairs_fakes_with_real_labels():
    """Class 0's fakes are good (like its reals), class 1's are shifted: cDRE learns the difference per label."""
    torch.manual_seed(0)
    n = 2000
    y = torch.arange(2).repeat(n // 2)
    real = torch.randn(n, 1)
    shift = torch.where(y == 1, 1.5, 0.0)[:, None, None]
    fake = torch.randn(n, 4, 1) + shift
    net = RatioNet(1, width=32, depth=2, dropout=0.0, label="class", num_classes=2, embed_dim=4)
    train_ratio(net, real, y, fake, penalty=0.01, steps=800, batch_size=256, lr=3e-3, weight_decay=0.0)
    at = torch.tensor([[2.5], [-0.5]])  # a class-1 fake far up is bad, one near 0 is good
    psi1 = ratio(net, at, torch.tensor([1, 1]))
    psi0 = ratio(net, torch.tensor([[0.0], [0.0]]), torch.tensor([0, 0]))
    assert psi1[1] > 2 * psi1[0]
    assert 0.5 < float(psi0.mean()) < 2.0  # class 0: fakes like reals, ratio ~ 1


def test_draw_groups_by_label_and_pool_shapes():
    class G(torch.nn.Module):
        def forward(self, z, y):
            return y.float()[:, None] + 0.01 * z[:, :1]

    class Phi(torch.nn.Module):
        feature_dim = 1

        def features(self, x):
            return x

        head = torch.nn.Identity()

    torch.manual_seed(0)
    net = RatioNet(1, width=8, depth=1, dropout=0.0)
    sub = Subsampler(Phi(), net.eval(), zeta=None)
    labels = torch.tensor([2, 0, 1])
    x, y, stats = draw(G(), 1, labels, 5, sub, burnin=3, batch_size=4)
    assert y.tolist() == [2] * 5 + [0] * 5 + [1] * 5 and stats is not None
    assert torch.allclose(x[:, 0], y.float(), atol=0.1)
    x0, y0, s0 = draw(G(), 1, labels, 5)
    assert y0.tolist() == y.tolist() and s0 is None
    pool = fake_feature_pool(
        partial(fake_features, Phi().features, lambda yy: G()(torch.randn(len(yy), 1), yy), batch_size=5), labels, 4
    )
    assert pool.shape == (3, 4, 1) and torch.allclose(pool[:, :, 0], labels.float()[:, None].expand(3, 4), atol=0.1)


def test_per_class_penalty_by_hand():
    """groups: the penalty is sum_c (n_c / n) (mean_c psi - 1)^2, not (mean psi - 1)^2."""
    psi_real = torch.tensor([0.0, 2.0, 1.0])
    psi_fake = torch.tensor([1.0, 3.0, 0.5])
    groups = torch.tensor([4, 4, 7])  # class 4: mean 2, class 7: mean 0.5
    base = float(softplus_dre_loss(psi_real, psi_fake, 0.0))
    want = base + 0.1 * (2 / 3 * (2.0 - 1) ** 2 + 1 / 3 * (0.5 - 1) ** 2)
    assert float(softplus_dre_loss(psi_real, psi_fake, 0.1, groups)) == pytest.approx(want, abs=1e-6)
    # one class: the plain penalty
    same = torch.zeros(3, dtype=torch.long)
    assert float(softplus_dre_loss(psi_real, psi_fake, 0.1, same)) == pytest.approx(
        float(softplus_dre_loss(psi_real, psi_fake, 0.1)), abs=1e-7
    )


def test_per_class_ratio_net_uses_each_class_head_alone():
    torch.manual_seed(0)
    net = RatioNet(3, width=16, depth=2, dropout=0.0, label="per_class", num_classes=3).eval()
    h, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    assert net.conditional
    assert net.heads is not None
    psi = net(h, y)
    want = torch.stack([net.heads[int(c)](h[i : i + 1]).view(()) for i, c in enumerate(y)])
    assert torch.allclose(psi, want)
    net.train()
    net(h[:2], torch.tensor([1, 1])).sum().backward()  # only class 1's head takes a gradient
    grads = [sum(float(p.grad.abs().sum()) for p in head.parameters() if p.grad is not None) for head in net.heads]
    assert grads[1] > 0 and grads[0] == 0 and grads[2] == 0
    with pytest.raises(ValueError, match="needs labels"):
        net(h)


def test_dre_f_sp_for_classes_learns_each_class_ratio_that_one_marginal_psi_cannot():
    """Class 0: reals N(1, 1) vs fakes N(0, 1); class 1: reals N(-1, 1) vs fakes N(0, 1). The
    marginal ratio only sees |h| grow; the per-class nets rank each class by its own ratio."""
    from pipeline.params import DreParams
    from pipeline.subsample.fit import RatioData, auc, fit_ratio

    torch.manual_seed(0)
    n = 2000
    y = torch.arange(2).repeat_interleave(n)
    shift = torch.where(y == 0, 1.0, -1.0)[:, None]
    h_real = torch.randn(2 * n, 1) + shift
    pool = torch.randn(2 * n, 4, 1)
    y_held = torch.arange(2).repeat_interleave(500)
    h_held = torch.randn(1000, 1) + torch.where(y_held == 0, 1.0, -1.0)[:, None]
    data = RatioData(h_real, y, pool, h_held, y_held, torch.randn(1000, 1))
    p = DreParams(
        width=16,
        depth=2,
        dropout=0.0,
        embed_dim=4,
        norm="none",
        penalty=0.01,
        steps=400,
        batch_size=256,
        lr=3e-3,
        weight_decay=0.0,
    )
    per_class = fit_ratio(data, "dre", p, num_classes=2)
    assert per_class.arch["label"] == "per_class"
    marginal = fit_ratio(data, "dre", p, num_classes=0)  # one psi(h) over both classes
    assert marginal.arch["label"] == "none"
    assert per_class.stats["auc_real_vs_fake"] > 0.7
    assert per_class.stats["auc_real_vs_fake"] > marginal.stats["auc_real_vs_fake"] + 0.08
    # within class 0, the per-class psi grows with h (its true ratio exp(h - 1/2))
    grid = torch.linspace(-1, 2, 7)[:, None]
    psi0 = ratio(per_class.net, grid, torch.zeros(7, dtype=torch.long))
    assert bool((psi0[1:] >= psi0[:-1] - 1e-3).all()) and float(psi0[-1]) > 2 * float(psi0[0])
    assert auc(torch.ones(3), torch.zeros(3)) == 1.0


def test_m_is_the_max_over_in_window_candidates_only():
    """Out-of-window candidates score psi 100, in-window ones 1: M stays 1 (they can never be kept),
    so every in-window candidate passes u <= psi / M; an M of 100 would keep 1% of them."""
    torch.manual_seed(0)

    def score(x, y):
        ok = window_mask(x[:, 0], y, 0.05)
        return torch.where(ok, 1.0, 100.0), ok

    stats = rejection_sample(
        lambda y: y[:, None] + 0.1 * torch.randn(len(y), 1),
        score,
        torch.tensor([0.3, 0.7]),
        200,
        lambda *a: None,
        burnin=50,
        batch_size=400,
    )
    assert stats.M.tolist() == [1.0, 1.0]
    in_window = 1 - stats.out_of_window.sum() / stats.proposed.sum()
    assert float(stats.passed.sum() / stats.proposed.sum()) == pytest.approx(float(in_window), abs=1e-6)


def test_training_fakes_are_drawn_in_the_label_window_as_rejection_sampling_keeps_them():
    """cDR-RS: a fake for label y is generated at y' ~ U[y - zeta, y + zeta] cut to [0, 1] and kept
    only when its predicted label lies within zeta of y (here the prediction is x = y' + noise)."""
    from pipeline.subsample.ratio import fake_features

    torch.manual_seed(0)
    gen_labels = []

    def generate(y):
        gen_labels.append(y)
        return y[:, None] + 0.05 * torch.randn(len(y), 1)

    labels = torch.tensor([0.0, 0.5, 1.0]).repeat(2000)
    zeta = 0.1
    h = fake_features(lambda x: x, generate, labels, batch_size=1000, window=(lambda h: h, zeta))
    assert h.shape == (6000, 1)
    first = torch.cat(gen_labels[:6])  # the first round: one label per target, in order
    assert (first - labels).abs().max() <= zeta + 1e-6 and first.min() >= 0 and first.max() <= 1
    mid = first[labels == 0.5]
    assert float(mid.mean()) == pytest.approx(0.5, abs=0.005) and float(mid.std()) == pytest.approx(
        0.2 / 12**0.5, abs=0.005
    )  # uniform on [0.4, 0.6]
    assert float(first[labels == 0.0].max()) <= zeta and float(first[labels == 0.0].mean()) == pytest.approx(
        0.05, abs=0.005
    )  # the window cut at 0: uniform on [0, 0.1]
    assert ((h[:, 0] - labels).abs() <= zeta).float().mean() > 0.999  # redrawn until inside
    # without a window: generated exactly at the labels
    gen_labels.clear()
    fake_features(lambda x: x, generate, labels[:5], batch_size=1000)
    assert torch.equal(gen_labels[0], labels[:5])


def test_fresh_fakes_are_drawn_for_every_training_batch():
    torch.manual_seed(0)
    calls = []

    def fresh(y):
        calls.append(y.clone())
        return torch.randn(len(y), 2)

    h_real, y_real = torch.randn(50, 2), torch.randint(0, 3, (50,))
    net = RatioNet(2, width=16, depth=1, dropout=0.0, label="class", num_classes=3)
    train_ratio(net, h_real, y_real, fresh, penalty=0.1, steps=7, batch_size=8, lr=1e-3)
    assert len(calls) == 7 and all(len(c) == 8 for c in calls)
    assert all(set(c.tolist()) <= set(y_real.tolist()) for c in calls)


def test_a_block_of_fresh_fakes_is_shown_reuse_times_and_never_after_its_block():
    from pipeline.subsample.ratio import FreshFakes

    torch.manual_seed(0)
    drawn: list[torch.Tensor] = []  # fake ids of each block, in the order drawn

    def draw(i):
        ids = torch.arange(len(i)) + 1000 * len(drawn)
        drawn.append(ids)
        return torch.stack([ids.float(), i.float()], 1)  # (fake id, the real index it was drawn for)

    fresh = FreshFakes(draw, n=50, batch_size=4, block=2, reuse=3)
    served = [fresh() for _ in range(12)]  # 2 blocks of 2 x 3 batches
    assert fresh.blocks_drawn == 2 and len(drawn) == 2 and all(len(ids) == 8 for ids in drawn)
    for b, ids in enumerate(drawn):
        shown = torch.cat([h[:, 0] for _, h in served[6 * b : 6 * b + 6]]).long()
        assert sorted(shown.tolist()) == sorted(ids.tolist() * 3)  # each fake of the block exactly 3 times
        assert not set(shown.tolist()) & {int(k) for s in drawn if s is not ids for k in s}  # only its own block
    for i, h in served:  # the pairs stay together: each fake comes with the real it was drawn for
        assert torch.equal(h[:, 1].long(), i)


def test_one_block_of_one_batch_draws_new_fakes_for_every_batch_as_before():
    from pipeline.subsample.ratio import FreshFakes

    torch.manual_seed(0)
    fresh = FreshFakes(lambda i: i.float()[:, None], n=50, batch_size=8)
    got = [fresh() for _ in range(3)]
    torch.manual_seed(0)
    want = [torch.randint(0, 50, (8,)) for _ in range(3)]  # one draw of the batch's reals a step, in order
    assert fresh.blocks_drawn == 3 and all(torch.equal(i, w) for (i, _), w in zip(got, want, strict=True))


def test_training_draws_one_block_per_block_times_reuse_steps():
    torch.manual_seed(0)
    calls = []

    def fresh(y):
        calls.append(len(y))
        return torch.randn(len(y), 2)

    h_real, y_real = torch.randn(50, 2), torch.randint(0, 3, (50,))
    net = RatioNet(2, width=16, depth=1, dropout=0.0, label="class", num_classes=3)
    train_ratio(net, h_real, y_real, fresh, penalty=0.1, steps=13, batch_size=8, lr=1e-3, block=3, reuse=2)
    assert calls == [24, 24, 24]  # steps 1-6, 7-12, 13


@pytest.mark.parametrize("max_redraws", [0, 1, 3])
def test_window_redraws_stop_after_max_redraws(max_redraws):
    """A fake whose predicted label is outside the window is drawn again at most max_redraws times."""
    from pipeline.subsample.ratio import fake_features

    sizes = []

    def never_in_window(y):
        sizes.append(len(y))
        return torch.full((len(y), 1), 5.0)  # predicted label 5: always outside [y - zeta, y + zeta]

    fake_features(lambda x: x, never_in_window, torch.rand(40), window=(lambda h: h, 0.1), max_redraws=max_redraws)
    assert sizes == [40] * (1 + max_redraws)


def test_window_redraws_shrink_the_out_of_window_share_geometrically():
    from pipeline.subsample.ratio import fake_features

    torch.manual_seed(0)
    labels = torch.full((20000,), 0.5)
    coin = lambda y: torch.where(torch.rand(len(y)) < 0.5, y, y + 1.0)[:, None]  # noqa: E731  in window half the time
    for k in (0, 2):
        h = fake_features(lambda x: x, coin, labels, batch_size=5000, window=(lambda h: h, 0.3), max_redraws=k)
        assert float(((h[:, 0] - labels).abs() > 0.3).float().mean()) == pytest.approx(0.5 ** (k + 1), abs=0.01)
