import math

import pytest
import torch

from pipeline.distill.losses import ce_loss
from pipeline.distill.methods import BLKD
from pipeline.errors import ParamsError
from pipeline.gan.losses import LOSSES, get_loss
from pipeline.nets.backbone import KDOut


def blkd_loss(s, y, t, *, temperature, alpha):
    """The BLKD method on logits alone (no maps or embeddings needed)."""
    return BLKD(temperature, alpha)(KDOut(s, [], s), KDOut(t, [], t), y, torch.arange(len(y)), ce_loss)


real = torch.tensor([2.0, 0.5, -1.0])
fake = torch.tensor([-2.0, 0.0, 1.5])


def test_hinge_by_hand():
    d, g = LOSSES["hinge"]
    # relu(1 - real) = [0, 0.5, 2] -> mean 2.5/3 ; relu(1 + fake) = [0, 1, 2.5] -> mean 3.5/3
    assert d(real, fake).item() == pytest.approx(2.5 / 3 + 3.5 / 3)
    assert g(fake).item() == pytest.approx(0.5 / 3)  # -mean([-2, 0, 1.5])


def test_bce_by_hand():
    d, g = LOSSES["bce"]
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731  softplus
    expected_d = sum(sp(-r) for r in real.tolist()) / 3 + sum(sp(f) for f in fake.tolist()) / 3
    assert d(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert g(fake).item() == pytest.approx(sum(sp(-f) for f in fake.tolist()) / 3, rel=1e-6)


def test_weighted_d_loss_is_mean_of_weighted_terms():
    d, _ = LOSSES["hinge"]
    w_r, w_f = torch.tensor([1.0, 0.0, 0.5]), torch.tensor([0.0, 1.0, 1.0])
    # [0, 0.5, 2] * w_r = [0, 0, 1] ; [0, 1, 2.5] * w_f = [0, 1, 2.5]
    assert d(real, fake, w_r, w_f).item() == pytest.approx(1 / 3 + 3.5 / 3)


def test_unknown_loss_names_the_choices():
    with pytest.raises(ParamsError, match="unknown GAN loss 'wgan' \\(known: bce, hinge, ls\\)"):
        get_loss("wgan")


def test_ce_and_blkd_by_hand():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[0.0, 0.0], [0.0, 4.0]])
    y = torch.tensor([0, 1])

    def softmax(row):
        e = [math.exp(v) for v in row]
        return [v / sum(e) for v in e]

    ce = -(math.log(softmax([1, 0])[0]) + math.log(softmax([0, 2])[1])) / 2
    assert ce_loss(s, y).item() == pytest.approx(ce, rel=1e-6)
    T, alpha = 2.0, 0.75
    kl = 0.0
    for srow, trow in zip(s.tolist(), t.tolist()):
        ps, pt = softmax([v / T for v in srow]), softmax([v / T for v in trow])
        kl += sum(p * math.log(p / q) for p, q in zip(pt, ps))
    kl /= 2
    expected = alpha * T * T * kl + (1 - alpha) * ce
    assert blkd_loss(s, y, t, temperature=T, alpha=alpha).item() == pytest.approx(expected, rel=1e-6)
    # with alpha = 0 BLKD is plain CE, and identical logits give zero KL
    assert blkd_loss(s, y, t, temperature=T, alpha=0.0).item() == pytest.approx(ce, rel=1e-6)
    assert blkd_loss(s, y, s, temperature=T, alpha=1.0).item() == pytest.approx(0.0, abs=1e-7)
