"""Continuous-label metrics on samples with a known answer."""

import math

import pytest
import torch
from torch import nn

from pipeline.metrics import (
    binned_fid,
    circle_metrics,
    diversity,
    frechet_distance,
    label_bins,
    label_score,
    label_score_by_bin,
)


def _angles(n=36):
    return torch.arange(n) * 2 * math.pi / n


def _centres(t, r=1.0):
    return r * torch.stack([torch.sin(t), torch.cos(t)], 1)


def _exact(n, mean, cov):
    """n points whose sample mean and unbiased sample covariance are exactly `mean` and `cov`."""
    x = torch.randn(n, 2, dtype=torch.float64)
    x = x - x.mean(0)
    x = x @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(x.T))).T  # whiten: covariance I
    return x @ torch.linalg.cholesky(cov).T + mean


def test_true_gaussians_score_perfectly():
    torch.manual_seed(0)
    t = _angles()
    fake = _centres(t)[:, None] + 0.02 * torch.randn(len(t), 4000, 2)
    m = circle_metrics(fake, t)
    assert m["pct_high_quality"] > 99.9 and m["pct_recovered_modes"] == 100.0
    assert m["w2"] == pytest.approx(0.0, abs=5e-6)


def test_shift_and_hand_computed_w2():
    t = _angles(4)
    d, a, b = torch.tensor([0.03, -0.04]), 0.01**2, 0.05**2
    cov = torch.diag(torch.tensor([a, b], dtype=torch.float64))
    fake = torch.stack([_exact(50, c + d, cov) for c in _centres(t).double()])  # sample mean c + d, covariance cov
    # ||d||^2 + (sqrt(a) - std)^2 + (sqrt(b) - std)^2 = 0.0025 + 0.0001 + 0.0009
    assert circle_metrics(fake, t)["w2"] == pytest.approx(0.0025 + 0.0001 + 0.0009, rel=1e-6)


def test_shift_along_x_adds_its_square():
    torch.manual_seed(0)
    t = _angles()
    fake = _centres(t)[:, None] + 0.02 * torch.randn(len(t), 4000, 2) + torch.tensor([0.05, 0.0])
    m = circle_metrics(fake, t)
    assert m["w2"] == pytest.approx(0.05**2, rel=0.02)
    t = t.double()
    cov = 0.02**2 * torch.eye(2, dtype=torch.float64)
    shift = torch.tensor([0.05, 0.0], dtype=torch.float64)
    exact = torch.stack([_exact(30, c + shift, cov) for c in _centres(t)])  # sample mean and covariance exact
    m = circle_metrics(exact, t)
    assert m["w2"] == pytest.approx(0.05**2, rel=1e-9) and m["w2_std"] == pytest.approx(0.0, abs=1e-12)


def test_w2_matches_general_frechet_distance():
    torch.manual_seed(1)
    t = _angles(3).double()
    fake = _centres(t)[:, None] + torch.randn(3, 50, 2) @ torch.tensor([[0.03, 0.01], [0.0, 0.02]])
    per_angle = [
        frechet_distance(c, 0.02**2 * torch.eye(2, dtype=torch.float64), f.double().mean(0), torch.cov(f.double().T))
        for c, f in zip(_centres(t), fake)
    ]
    assert circle_metrics(fake, t)["w2"] == pytest.approx(sum(per_angle) / 3, rel=1e-9)


def test_half_the_modes_missed():
    torch.manual_seed(0)
    t = _angles(10)
    fake = _centres(t)[:, None] + 0.001 * torch.randn(10, 20, 2)
    fake[::2] += torch.tensor([1.0, 0.0])  # every other angle: all fakes far from their centre
    m = circle_metrics(fake, t)
    assert m["pct_recovered_modes"] == pytest.approx(50.0) and m["pct_high_quality"] == pytest.approx(50.0)


def test_circle_metrics_rejects_bad_shapes():
    with pytest.raises(ValueError, match="fake must be"):
        circle_metrics(torch.zeros(3, 5, 2), _angles(4))


def test_label_score_and_diversity_by_hand():
    mean, std = label_score(torch.tensor([1.0, 2.0, 6.0]), torch.tensor([2.0, 2.0, 3.0]))
    assert mean == pytest.approx(4 / 3) and std == pytest.approx(torch.tensor([1.0, 0.0, 3.0]).std().item())
    labels = torch.tensor([0.0] * 4 + [1.0] * 4)
    one_class = torch.tensor([3, 3, 3, 3, 0, 1, 0, 1])  # label 0: entropy 0; label 1: two classes equally -> ln 2
    assert diversity(one_class, labels) == pytest.approx(math.log(2) / 2)
    assert diversity(torch.tensor([0, 1, 2, 3]), torch.zeros(4)) == pytest.approx(math.log(4))
    # classes need not be contiguous, labels are floats, order does not matter: ln 3, 0 and ln 2 per label
    attr = torch.tensor([7, 40, 2, 7, 40, 2] + [5] * 5 + [40, 7, 40, 7])
    labels = torch.tensor([0.5] * 6 + [0.25] * 5 + [0.75] * 4)
    perm = torch.randperm(len(attr), generator=torch.Generator().manual_seed(0))
    assert diversity(attr[perm], labels[perm]) == pytest.approx((math.log(3) + math.log(2)) / 3)


def test_label_score_by_bin_by_hand():
    # errors 1, 0, 3 in bin 0 (0-30 degrees), none in bin 1, 30 in bin 2 (90 itself goes to the last bin)
    scores = label_score_by_bin(torch.tensor([1.0, 2.0, 6.0, 60.0]), torch.tensor([2.0, 2.0, 3.0, 90.0]), 0.0, 90.0, 3)
    assert scores[0] == pytest.approx(4 / 3) and math.isnan(scores[1]) and scores[2] == pytest.approx(30.0)
    with pytest.raises(ValueError, match="equally many"):
        label_score_by_bin(torch.zeros(3), torch.zeros(2), 0.0, 90.0, 3)


def test_label_bins_edges():
    y = torch.tensor([-5.0, 0.0, 29.9, 30.0, 89.9, 90.0, 100.0])
    assert label_bins(y, 0.0, 90.0, 3).tolist() == [0, 0, 0, 1, 2, 2, 2]
    edges = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], dtype=torch.float64)
    assert label_bins(edges, 0.0, 1.0, 10).tolist() == list(range(10)) + [9]  # each interior edge opens its bin
    assert label_bins(edges, 0.0, 1.0, 10).dtype == torch.int64
    with pytest.raises(ValueError):
        label_bins(y, 1.0, 1.0, 3)


class _Flat(nn.Module):
    def features(self, x):
        return x.flatten(1)


def test_binned_fid_zero_for_identical_sets_and_grows_with_a_shift():
    torch.manual_seed(0)
    x = torch.randn(400, 1, 2, 2)
    y = torch.rand(400) * 90
    same = binned_fid(_Flat(), x, y, x.clone(), y.clone(), 0.0, 90.0, 4)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6) and same["intra_fid"] == pytest.approx(0.0, abs=1e-6)
    assert same["n_bins_used"] == 4
    shifted = binned_fid(_Flat(), x, y, x + 1.0, y, 0.0, 90.0, 4)
    assert shifted["fid"] == pytest.approx(4.0, rel=1e-6)  # ||mean shift||^2 = 4 dims * 1^2; covariances equal
    assert shifted["intra_fid"] == pytest.approx(4.0, rel=1e-6)


def test_binned_fid_accepts_a_plain_module_and_skips_sparse_bins():
    torch.manual_seed(0)
    x = torch.randn(300, 1, 2, 2)
    y = torch.cat([torch.rand(299) * 60, torch.tensor([80.0])])  # bin [60, 90) holds one image only
    flat = nn.Flatten()  # no .features: its forward gives the features
    out = binned_fid(flat, x, y, x + 0.5, y, 0.0, 90.0, 3, batch_size=64)
    assert out["n_bins_used"] == 2
    assert out["fid"] == pytest.approx(1.0, rel=1e-6) and out["intra_fid"] == pytest.approx(1.0, rel=1e-6)


def test_short_and_empty_angles_with_counts():
    """Rejection sampling can leave an angle short or empty: counts say how many fakes each angle got."""
    torch.manual_seed(0)
    t = _angles(4)
    full = _centres(t)[:, None] + 0.02 * torch.randn(4, 50, 2)
    equal = circle_metrics(full, t)
    assert circle_metrics(full.reshape(-1, 2), t, counts=torch.full((4,), 50)) == equal
    # angle 1 empty, angle 3 one far-off fake: 3 of 4 modes recovered, W2 over the 2 angles with >= 2 fakes
    x = torch.cat([full[0], full[2], full[3, :1] + torch.tensor([1.0, 0.0])])
    m = circle_metrics(x, t, counts=torch.tensor([50, 0, 50, 1]))
    assert m["pct_recovered_modes"] == pytest.approx(50.0)
    assert m["pct_high_quality"] == pytest.approx(
        100.0 * float(((full[[0, 2]] - _centres(t)[[0, 2], None]).norm(dim=2) <= 0.08).sum()) / 101
    )
    assert m["w2"] == pytest.approx(circle_metrics(full[[0, 2]], t[[0, 2]])["w2"], rel=1e-12)
    with pytest.raises(ValueError, match="counts"):
        circle_metrics(x, t, counts=torch.tensor([50, 0, 50, 2]))


def test_counts_by_label_unsorted_labels_and_an_empty_one() -> None:
    from pipeline.metrics import counts_by_label

    labels = torch.tensor([0.7, 0.1, 0.4, 0.9])
    y = torch.tensor([0.7, 0.7, 0.1, 0.9, 0.9, 0.9])  # grouped in the order of labels; 0.4 got none
    assert counts_by_label(y, labels).tolist() == [2, 1, 0, 3]
