"""CcGAN's vicinities on small label sets, against hand-worked expectations."""

import math

import pytest
import torch

from pipeline.gan.binned import BinnedConditioning, BinnedGenerator, Bins
from pipeline.gan.vicinal import VicinalSampler, Vicinity, rule_of_thumb


def test_rule_of_thumb_against_hand_computation():
    y = torch.tensor([0.0, 0.25, 0.5, 1.0])
    sigma, kappa, nu = rule_of_thumb(y, m_kappa=2.0)
    # population std: mean 0.4375, variance 0.546875 / 4 = 0.13671875, std 0.369755
    # sigma = 1.06 * 0.369755 * 4^(-1/5) = 1.06 * 0.369755 * 0.757858 = 0.297034
    assert sigma == pytest.approx(0.297034, abs=1e-5)
    assert kappa == pytest.approx(2 * 0.5)  # largest gap between sorted distinct labels: 0.5 -> 1.0
    assert nu == pytest.approx(1.0)
    # a known gap (the circle's 1/120) replaces the measured one; repeated labels do not count as gaps
    _, kappa, nu = rule_of_thumb(torch.tensor([0.0, 0.0, 0.5, 0.5]), m_kappa=2.0, gap=1 / 120)
    assert kappa == pytest.approx(1 / 60) and nu == pytest.approx(3600.0)


def test_hard_window_holds_exactly_the_reals_within_kappa():
    y = torch.tensor([0.9, 0.1, 0.5, 0.2, 0.0, 1.0])  # unsorted on purpose
    s = VicinalSampler(y, Vicinity("hard", sigma=0.0, kappa=0.06, nu=1.0))
    lo, hi = s.window(torch.tensor([0.12, 0.15, 0.35, 0.96]))
    held = [sorted(s.sorted[a:b].tolist()) for a, b in zip(lo.tolist(), hi.tolist())]
    assert held == [pytest.approx([0.1]), pytest.approx([0.1, 0.2]), [], pytest.approx([0.9, 1.0])]


def test_hard_draw_reals_and_fake_labels_inside_the_vicinity():
    torch.manual_seed(0)
    y = torch.tensor([0.0, 0.1, 0.2, 0.5, 0.9, 1.0])
    kappa = 0.06
    b = VicinalSampler(y, Vicinity("hard", sigma=0.02, kappa=kappa, nu=1.0)).draw(4000)
    assert ((y[b.real_index] - b.targets).abs() <= kappa + 1e-6).all()
    assert ((b.fake_labels - b.targets).abs() <= kappa + 1e-6).all()
    assert b.fake_labels.min() >= 0 and b.fake_labels.max() <= 1  # clipped at the ends of the label range
    assert b.w_real is None and b.w_fake is None  # HVDL: every pair weighs 1
    # the fake labels spread over the window, not just its centre
    assert (b.fake_labels - b.targets).abs().max() > 0.9 * kappa


def test_hard_draw_chooses_uniformly_among_the_reals_in_the_vicinity():
    torch.manual_seed(0)
    y = torch.tensor([0.4, 0.4, 0.45, 0.6])  # target 0.4 or 0.45 (sigma 0): window 0.1 holds 0.4, 0.4, 0.45
    b = VicinalSampler(y, Vicinity("hard", sigma=0.0, kappa=0.1, nu=1.0)).draw(30000)
    at_04 = b.targets == torch.tensor(0.4)
    counts = torch.bincount(b.real_index[at_04], minlength=4).float() / at_04.sum()
    assert counts.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0], abs=0.02)
    # the distinct labels (0.4, 0.45, 0.6) are equally likely targets, whatever their counts
    assert at_04.float().mean() == pytest.approx(1 / 3, abs=0.02)


def test_empty_vicinity_redraws_the_noise():
    torch.manual_seed(0)
    y = torch.tensor([0.0, 1.0])
    s = VicinalSampler(y, Vicinity("hard", sigma=0.3, kappa=0.05, nu=1.0))
    lo, hi = s.window(s.noisy(s.bases(1000)))
    assert (hi <= lo).float().mean() > 0.5  # most first draws land in an empty vicinity ...
    b = s.draw(1000)
    assert ((y[b.real_index] - b.targets).abs() <= 0.05 + 1e-6).all()  # ... and every drawn pair is valid
    assert ((b.targets != 0) & (b.targets != 1)).float().mean() > 0.99  # targets keep (redrawn) noise, not reset to y_j


def test_soft_weights_and_window():
    torch.manual_seed(0)
    y = torch.tensor([0.3, 0.5])
    vic = Vicinity("soft", sigma=0.0, kappa=0.1, nu=100.0)
    assert vic.radius == pytest.approx(math.sqrt(math.log(1000) / 100))  # 0.2628: 0.5 is in 0.3's window
    b = VicinalSampler(y, vic).draw(4000)
    assert b.w_real is not None and b.w_fake is not None
    gap = y[b.real_index] != b.targets
    # a pair at distance 0 weighs 1, at distance 0.2 exp(-100 * 0.04) = exp(-4)
    assert b.w_real[~gap].tolist() == pytest.approx([1.0] * int((~gap).sum()))
    assert b.w_real[gap].tolist() == pytest.approx([math.exp(-4)] * int(gap.sum()), rel=1e-4)
    assert 0.4 < gap.float().mean() < 0.6  # both reals are in each window: chosen half the time
    d = b.fake_labels - b.targets
    assert (d.abs() <= vic.radius + 1e-6).all()
    assert torch.allclose(b.w_fake, torch.exp(-100 * d**2))


def test_generator_labels_stay_in_range():
    torch.manual_seed(0)
    s = VicinalSampler(torch.tensor([0.0, 1.0]), Vicinity("hard", sigma=0.2, kappa=0.1, nu=1.0))
    g = s.g_labels(2000)
    assert g.min() == 0.0 and g.max() == 1.0 and ((g > 0) & (g < 1)).any()


def test_bins_hold_equal_counts_of_the_distinct_labels():
    # 6 distinct labels (0.1 twice) in 3 bins: {0, .1}, {.15, .2}, {.6, 1}; boundaries .125 and .4
    bins = Bins.of(torch.tensor([0.6, 0.0, 0.1, 0.1, 0.15, 1.0, 0.2]), n_bins=3)
    assert bins.edges.tolist() == pytest.approx([0.125, 0.4])
    y = torch.tensor([0.0, 0.1, 0.124, 0.126, 0.2, 0.39, 0.41, 1.0, 1.2, -0.3])
    assert bins.classes(y).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 0]
    # an uneven split: 5 distinct labels in 2 bins give 3 and 2
    assert Bins.of(torch.tensor([0.0, 0.1, 0.2, 0.3, 0.9]), 2).edges.tolist() == pytest.approx([0.25])
    with pytest.raises(ValueError, match="distinct training labels"):
        Bins.of(torch.tensor([0.0, 0.5, 1.0]), 4)
    G = BinnedGenerator(lambda z, c: c.float()[:, None], bins)  # type: ignore[arg-type]
    assert G(torch.zeros(2, 1), torch.tensor([0.3, 0.7])).view(-1).tolist() == [1.0, 2.0]


def test_binned_generator_steps_draw_classes_as_the_reals_are_drawn():
    torch.manual_seed(0)
    y = torch.tensor([0] * 80 + [1] * 15 + [2] * 5)
    g = BinnedConditioning(torch.zeros(100, 1), y, 3).g_labels(20000)
    assert (torch.bincount(g, minlength=3).float() / len(g)).tolist() == pytest.approx([0.8, 0.15, 0.05], abs=0.01)


def test_redraws_consume_the_random_stream_as_a_mask_based_loop_does():
    """The redraw loop works on index tensors for speed; it must draw exactly what the plain
    loop over a boolean mask draws, or runs would no longer reproduce their figures."""
    y = torch.arange(12).float() / 12
    s = VicinalSampler(y, Vicinity("hard", sigma=0.3, kappa=0.03, nu=1.0))  # wide noise: many empty vicinities

    def reference(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        base = s.bases(n)
        targets = s.noisy(base)
        lo, hi = s.window(targets)
        empty = hi <= lo
        while empty.any():
            redraws.append(int(empty.sum()))
            targets[empty] = s.noisy(base[empty])
            lo[empty], hi[empty] = s.window(targets[empty])
            empty = hi <= lo
        real_index = s.order[lo + (torch.rand(n) * (hi - lo)).long().clamp_max(hi - lo - 1)]
        torch.rand(n)  # the fake labels' offsets, drawn next by draw()
        return targets, real_index

    redraws: list[int] = []
    torch.manual_seed(3)
    expected = [reference(64) for _ in range(20)]
    assert len(redraws) > 20 and sum(redraws) > 100  # the loop was exercised
    torch.manual_seed(3)
    drawn = [(b.targets, b.real_index) for b in (s.draw(64) for _ in range(20))]
    for (t_ref, i_ref), (t, i) in zip(expected, drawn):
        assert torch.equal(t, t_ref) and torch.equal(i, i_ref)


def test_fake_labels_near_the_ends_are_uniform_on_the_cut_window():
    """y' = 0.01 with r = 0.05: the window [-0.04, 0.06] cut to [0, 0.06]; the draw is uniform there
    (mean 0.03, no mass piled on 0), not y' + U(-r, r) clipped (40% of it exactly at 0)."""
    torch.manual_seed(0)
    s = VicinalSampler(torch.tensor([0.0, 0.02, 0.98, 1.0]), Vicinity("hard", sigma=0.0, kappa=0.05, nu=1.0))
    low = s.fake_labels(torch.full((40000,), 0.01))
    assert low.min() >= 0 and low.max() <= 0.06 + 1e-6
    assert (low == 0).sum() == 0
    assert low.mean() == pytest.approx(0.03, abs=5e-4)
    assert (low < 0.03).float().mean() == pytest.approx(0.5, abs=0.01)
    high = s.fake_labels(torch.full((40000,), 0.995))  # window [0.945, 1]
    assert high.max() <= 1 and (high == 1).sum() == 0
    assert high.mean() == pytest.approx((0.945 + 1) / 2, abs=5e-4)
    mid = s.fake_labels(torch.full((40000,), 0.5))  # inside the range: uniform on [y' - r, y' + r]
    assert mid.min() >= 0.45 - 1e-6 and mid.max() <= 0.55 + 1e-6 and mid.mean() == pytest.approx(0.5, abs=5e-4)
