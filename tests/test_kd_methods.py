"""The KD methods against hand computations on tiny tensors, and their registry in params."""

import math

import pytest
import torch

from pipeline.distill.methods import AT, CRD, RKD, FitNet, attention_map
from pipeline.nets import build_classifier
from pipeline.nets.backbone import KDOut

Y = torch.tensor([0])
IDX = torch.tensor([0])


def out(maps=(), embedding=None, logits=None):
    e = embedding if embedding is not None else torch.zeros(1, 1)
    return KDOut(logits if logits is not None else torch.zeros(len(e), 2), list(maps), e)


def no_task(output, y):
    return output.sum() * 0


def fixed_fitnet():
    """FitNet with its learned regressor (conv, batch norm, ReLU) replaced by a fixed 1x1 conv x 2."""
    f = FitNet(1, 1, spatial=True, stage=-1, weight=100.0)
    f.regressor = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        f.regressor.weight.fill_(2.0)
        f.regressor.bias.zero_()
    return f


def test_fitnet_hint_with_a_fixed_regressor():
    f = fixed_fitnet()
    s = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # r(F_s) = 2 F_s = [[2, 4], [6, 8]], pooled to 1x1: 5
    assert f.term(out([s]), out([torch.tensor([[[[6.0]]]])]), IDX).item() == pytest.approx((5 - 6) ** 2)
    same = torch.tensor([[[[1.0, 2.0]]]])  # equal sizes: mean((2 - 3)^2, (4 - 3)^2) = 1
    assert f.term(out([same]), out([torch.full((1, 1, 1, 2), 3.0)]), IDX).item() == pytest.approx(1.0)
    # the student's loss: task loss + 100 x the hint
    assert f(out([same]), out([torch.full((1, 1, 1, 2), 3.0)]), Y, IDX, no_task).item() == pytest.approx(100.0)


def test_attention_maps_and_at_loss_by_hand():
    f = torch.tensor([[[[1.0, 0.0]], [[1.0, 2.0]]]])  # (1, 2, 1, 2): mean_c F^2 = [1, 2]
    g = torch.tensor([[[[2.0, 0.0]]]])  # mean_c F^2 = [4, 0]
    a = [1 / math.sqrt(5), 2 / math.sqrt(5)]
    assert attention_map(f)[0].tolist() == pytest.approx(a)
    assert attention_map(g)[0].tolist() == pytest.approx([1.0, 0.0])
    expected = ((a[0] - 1) ** 2 + a[1] ** 2) / 2
    at = AT(weight=500.0)
    assert at.term(out([f]), out([g]), IDX).item() == pytest.approx(expected)
    # stages matched from the last back: the teacher's extra first stage is ignored
    assert at.term(out([f]), out([torch.randn(1, 3, 4, 4), g]), IDX).item() == pytest.approx(expected)


def _huber(a, b):
    d = abs(a - b)
    return 0.5 * d * d if d < 1 else d - 0.5


def _rkd_by_hand(s, t):
    n = len(s)

    def dist(e):
        d = [[math.dist(e[i], e[j]) for j in range(n)] for i in range(n)]
        mean = sum(d[i][j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        return [[x / mean for x in row] for row in d]

    def unit(v):
        norm = math.hypot(*v)
        return [x / norm for x in v] if norm > 1e-12 else [0.0 for _ in v]

    def cos(e, i, j, k):  # at j, between e_i and e_k
        u, w = unit([a - b for a, b in zip(e[i], e[j])]), unit([a - b for a, b in zip(e[k], e[j])])
        return sum(a * b for a, b in zip(u, w))

    ds, dt = dist(s), dist(t)
    d_term = sum(_huber(ds[i][j], dt[i][j]) for i in range(n) for j in range(n)) / n**2
    triples = [(i, j, k) for i in range(n) for j in range(n) for k in range(n)]
    a_term = sum(_huber(cos(s, i, j, k), cos(t, i, j, k)) for i, j, k in triples) / n**3
    return d_term, a_term


def test_rkd_distance_and_angle_terms_by_hand():
    s = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    t = [[0.0, 0.0], [3.0, 0.0], [0.0, 1.0]]
    d_term, a_term = _rkd_by_hand(s, t)
    assert d_term > 0 and a_term > 0
    rkd = RKD(distance=25.0, angle=50.0)
    got = rkd.term(out(embedding=torch.tensor(s)), out(embedding=torch.tensor(t)), torch.arange(3)).item()
    assert got == pytest.approx(25 * d_term + 50 * a_term, rel=1e-5)
    # relations are scale-free: a teacher twice the student's size teaches nothing new
    same = rkd.term(out(embedding=torch.tensor(s)), out(embedding=2 * torch.tensor(s)), torch.arange(3))
    assert same.item() == pytest.approx(0.0, abs=1e-6)


def test_crd_nce_on_a_three_sample_bank():
    crd = CRD(2, 2, n_data=3, dim=2, negatives=2, temperature=1.0)
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    v = torch.tensor([[1.0, 0.0]])
    loss = crd.nce(v, bank, torch.tensor([0]), torch.tensor([[1, 2]]), side=0).item()
    h = [math.exp(1.0), math.exp(0.0), math.exp(-1.0)]
    z = sum(h) / 3 * 3  # fixed on the first batch: mean(h) x n_data
    h = [x / z for x in h]
    noise = 2 / 3  # K / n
    expected = -(math.log(h[0] / (h[0] + noise)) + math.log(noise / (h[1] + noise)) + math.log(noise / (h[2] + noise)))
    assert loss == pytest.approx(expected, rel=1e-6)
    assert crd.z[0].item() == pytest.approx(z)


def test_crd_moves_its_memory_banks_towards_the_batch():
    torch.manual_seed(0)
    crd = CRD(4, 6, n_data=5, dim=3, negatives=3, momentum=0.5)
    before = crd.bank_s.clone()
    s, t = out(embedding=torch.randn(2, 4)), out(embedding=torch.randn(2, 6))
    crd.term(s, t, torch.tensor([1, 3]))
    changed = (crd.bank_s != before).any(1)
    assert changed.tolist() == [False, True, False, True, False]  # only the batch's rows move
    assert crd.bank_s.norm(dim=1).tolist() == pytest.approx([1.0] * 5)


def test_nets_stage_maps_agree_with_their_forward():
    """forward_kd's output is forward's, its embedding features', for every classifier net."""
    x = torch.randn(3, 1, 16, 16)
    for name in ("resnet", "resnet14", "cnn"):
        torch.manual_seed(0)
        net = build_classifier(name, 1, 4, 4).eval()
        kd = net.forward_kd(x)
        assert torch.equal(kd.logits, net(x)) and torch.equal(kd.embedding, net.features(x))
        assert all(m.dim() == 4 for m in kd.maps) and len(kd.maps) == (2 if name == "cnn" else 3)
    mlp = build_classifier("mlp", 2, 1, 8).eval()
    points = torch.randn(3, 2)
    assert torch.equal(mlp.forward_kd(points).logits, mlp(points))


def test_a_fitnet_stage_or_at_map_the_nets_lack_is_a_clear_error():
    from pipeline.distill.methods import build_method
    from pipeline.errors import ParamsError
    from pipeline.params import FitNetParams

    student, teacher = build_classifier("cnn", 1, 3, 4), build_classifier("resnet", 1, 3, 4)
    x = torch.randn(2, 1, 16, 16)
    assert build_method("fitnet", FitNetParams(stage=-2), student, teacher, x, 10).regressor[0].in_channels == 4
    with pytest.raises(ParamsError, match="the student net has 2 stage"):
        build_method("fitnet", FitNetParams(stage=-3), student, teacher, x, 10)
    with pytest.raises(ParamsError, match="at needs spatial feature maps"):
        attention_map(torch.randn(2, 8))
