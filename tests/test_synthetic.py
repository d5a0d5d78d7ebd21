import pytest
import torch
from torch import nn

from pipeline.distill.synthetic import build_synthetic, build_synthetic_regression, class_thresholds, keep_mask
from pipeline.gan.train import sample


def test_thresholds_and_mask_by_hand():
    ce = torch.tensor([0.1, 0.5, 0.9, 2.0, 1.0, 3.0])
    y = torch.tensor([0, 0, 0, 0, 1, 1])
    q = class_thresholds(ce, y, num_classes=3, rho=0.5)
    # class 0: median of [0.1, 0.5, 0.9, 2.0] = 0.7 ; class 1: median of [1, 3] = 2 ; class 2: empty -> keep all
    assert torch.allclose(q[:2], torch.tensor([0.7, 2.0]))
    assert torch.isinf(q[2])
    assert keep_mask(ce, y, q).tolist() == [True, True, False, False, True, False]
    # a fake exactly at its threshold is kept ("exceeds" drops)
    assert keep_mask(torch.tensor([0.7]), torch.tensor([0]), q).tolist() == [True]


class ConstantImageG(nn.Module):
    """Image = z[:, 0] everywhere, so the 'quality' of a fake is its first noise coordinate."""

    def forward(self, z, y):
        return z[:, :1, None, None].expand(len(z), 1, 4, 4).clone()


class SignTeacher(nn.Module):
    """Logits [c, -c] for an image of constant value c: confident in class 0 when c >> 0."""

    def forward(self, x):
        c = x.mean(dim=(1, 2, 3))
        return torch.stack([c, -c], 1)


def _fakes(n_per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.arange(2).repeat_interleave(n_per_class)
    return sample(ConstantImageG(), y, 2, 512), y


def test_build_synthetic_drops_the_worst_and_relabels():
    torch.manual_seed(0)
    syn = build_synthetic(SignTeacher(), _fakes(2000), _fakes(2000), num_classes=2, rho=0.6, relabel=True)
    # ~60% kept per class (burn-in quantile applied to fresh samples of the same distribution)
    assert torch.allclose(syn.kept_fraction, torch.tensor([0.6, 0.6]), atol=0.04)
    c = syn.x.mean(dim=(1, 2, 3))
    ce = torch.nn.functional.cross_entropy(SignTeacher()(syn.x), syn.y_cond, reduction="none")
    assert (ce <= syn.thresholds[syn.y_cond]).all()
    # CE at class 0 is softplus(-2c): the filter keeps the 60% largest c, i.e. c above the 40% quantile of N(0,1)
    assert c[syn.y_cond == 0].min() > -0.25 - 0.1 and c[syn.y_cond == 1].max() < 0.25 + 0.1
    # relabelled to the teacher's argmax
    assert torch.equal(syn.y, (c < 0).long())
    assert 0 < syn.relabelled_fraction < 0.5


def test_without_relabel_keeps_condition_labels():
    torch.manual_seed(0)
    syn = build_synthetic(SignTeacher(), _fakes(100), _fakes(100), num_classes=2, rho=0.9, relabel=False)
    assert 150 < len(syn.y) < 200 and torch.equal(syn.y, syn.y_cond) and syn.relabelled_fraction == 0.0


class LabelPlusNoiseG(nn.Module):
    """A 'regression' fake: every pixel = y + 0.1 * z[:, 0], so its label error is 0.1 * z[:, 0]."""

    def forward(self, z, y):
        return (y + 0.1 * z[:, 0])[:, None, None, None].expand(len(z), 1, 2, 2).clone()


class MeanRegressor(nn.Module):
    """Predicts the mean pixel: exactly y + error for LabelPlusNoiseG's fakes."""

    def forward(self, x):
        return x.mean(dim=(1, 2, 3))[:, None]


def test_regression_filter_drops_the_fakes_with_large_label_error():
    torch.manual_seed(0)

    def fakes(n):
        y = 0.2 + 0.6 * torch.rand(n)
        return sample(LabelPlusNoiseG(), y, 1, 512), y

    syn = build_synthetic_regression(MeanRegressor(), fakes(4000), fakes(4000), rho=0.5)
    # the threshold is the median |error| of the burn-in set: 0.1 * median|N(0, 1)| = 0.0674
    assert abs(syn.threshold - 0.0674) < 0.004
    assert abs(syn.kept_fraction - 0.5) < 0.03
    err = syn.y_teacher - syn.y_cond
    assert (err.abs() <= syn.threshold + 1e-6).all()  # everything kept is within the threshold
    # the teacher's labels (label adjustment) are the fakes' true content, y + error
    assert torch.allclose(syn.y_teacher, syn.x.mean(dim=(1, 2, 3)), atol=1e-6)


def test_regression_teacher_predictions_are_clipped_to_the_label_range():
    """Fakes at labels 0.0 and 1.0 whose teacher reads -0.08 and 1.08: clipped to 0 and 1, their
    error is 0 (kept, at the range's ends), not 0.08 (dropped by the 0.05 threshold)."""
    x = torch.cat([torch.full((1, 1, 2, 2), v) for v in (-0.08, 1.08, 0.58, 0.53)])
    y = torch.tensor([0.0, 1.0, 0.5, 0.5])
    burnin = (torch.cat([torch.full((1, 1, 2, 2), 0.5 + d) for d in (0.0, 0.05, -0.05)]), torch.full((3,), 0.5))
    syn = build_synthetic_regression(MeanRegressor(), burnin, (x, y), rho=1.0)
    assert syn.threshold == pytest.approx(0.05, abs=1e-6)
    assert syn.y_cond.tolist() == pytest.approx([0.0, 1.0, 0.5])  # 0.58 is 0.08 off: dropped
    assert syn.y_teacher.tolist() == pytest.approx([0.0, 1.0, 0.53])
