import math
import socket
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from pipeline.errors import DataError
from pipeline.metrics import (
    classifier_accuracy,
    fid,
    frechet_distance,
    inception_fid,
    inception_score,
    intra_fid,
)


class TinyNet(nn.Module):
    """Deterministic classifier on 1x8x8 images: fixed random projection to 4 features, then a linear head."""

    feature_dim = 4

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.proj = nn.Linear(64, self.feature_dim)
        self.head = nn.Linear(self.feature_dim, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def features(self, x: Tensor) -> Tensor:
        return torch.tanh(self.proj(x.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def images(n: int, shift: float = 0.0, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 1, 8, 8, generator=g) * 0.4 + shift).clamp(-1, 1)


def direct_fid(model: nn.Module, a: Tensor, b: Tensor) -> float:
    with torch.no_grad():
        fa, fb = model.features(a).double(), model.features(b).double()
    return frechet_distance(fa.mean(0), torch.cov(fa.T), fb.mean(0), torch.cov(fb.T))


def test_frechet_distance_diagonal_closed_form() -> None:
    g = torch.Generator().manual_seed(1)
    mu1, mu2 = torch.randn(5, generator=g), torch.randn(5, generator=g)
    s1, s2 = torch.rand(5, generator=g) + 0.1, torch.rand(5, generator=g) + 0.1
    expected = float((mu1 - mu2).square().sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum())
    assert frechet_distance(mu1, torch.diag(s1), mu2, torch.diag(s2)) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu1, torch.diag(s1), mu1, torch.diag(s1)) == pytest.approx(0.0, abs=1e-6)


def test_fid_identical_is_zero_and_orders_distributions() -> None:
    model = TinyNet().train()
    a, b, far = images(300, seed=0), images(300, seed=1), images(300, shift=0.5, seed=2)
    assert fid(model, a, a, batch_size=64) == pytest.approx(0.0, abs=1e-8)
    same, different = fid(model, a, b), fid(model, a, far)
    assert 0 < same < different
    assert model.training  # mode restored


class _Features(nn.Module):
    """A classifier's penultimate features as torchmetrics' FID feature extractor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.num_features = model, int(model.feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.model.features(x).double()


def test_fid_matches_direct_features_and_torchmetrics() -> None:
    from torchmetrics.image.fid import FrechetInceptionDistance

    model = TinyNet().eval()
    a, b = images(250, seed=3), images(150, shift=0.2, seed=4)
    result = fid(model, a, b, batch_size=37)
    assert isinstance(result, float)
    # features come from a float32 net in batches of 37 against one batch: their last bits depend on
    # the CPU's kernels for each batch size (1e-9 held on one machine, 3.6e-9 off on another)
    assert result == pytest.approx(direct_fid(model, a, b), rel=1e-7)
    reference = FrechetInceptionDistance(feature=_Features(model), normalize=True)
    reference.update(a, real=True)
    reference.update(b, real=False)
    assert result == pytest.approx(float(reference.compute()), rel=1e-6)


def test_intra_fid_matches_per_class_fid() -> None:
    model = TinyNet()
    real = torch.cat([images(60, shift=s, seed=10 + i) for i, s in enumerate((-0.3, 0.0, 0.3))])
    real_y = torch.arange(3).repeat_interleave(60)
    fake = torch.cat([images(50, shift=s, seed=20 + i) for i, s in enumerate((-0.2, 0.1, 0.0))] + [images(1, seed=9)])
    fake_y = torch.cat([torch.tensor([0] * 50 + [1] * 50 + [5] * 50), torch.tensor([2])])  # class 2: 1 fake only
    mean, per_class = intra_fid(model, real, real_y, fake, fake_y, batch_size=32)
    assert set(per_class) == {0, 1}
    for c in (0, 1):
        assert per_class[c] == pytest.approx(fid(model, real[real_y == c], fake[fake_y == c]), rel=1e-6)
    assert mean == pytest.approx((per_class[0] + per_class[1]) / 2)
    assert per_class[0] > 0 and per_class[1] > 0


def test_inception_score_bounds() -> None:
    k = 7
    one_hot = torch.eye(k).repeat(5, 1)  # balanced: 5 samples per class
    mean, std = inception_score(one_hot, splits=1)
    assert mean == pytest.approx(k, rel=1e-12) and std == 0.0
    mean, std = inception_score(one_hot, splits=5, shuffle=False)
    assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    same = torch.softmax(torch.randn(1, k), dim=1).repeat(20, 1)
    assert inception_score(same, splits=4)[0] == pytest.approx(1.0, abs=1e-12)


def test_inception_score_uses_10_splits_of_a_shuffled_order() -> None:
    """Fakes come grouped by class: 10 splits of the rows as given would each hold one class (IS 1).
    Shuffled, each split holds a mix and the score is near the whole set's (10 balanced classes: 10)."""
    grouped = torch.eye(10).repeat_interleave(100, dim=0)  # 100 one-hot rows per class, in class order
    mean, std = inception_score(grouped)
    assert 9.0 < mean <= 10.0 and std < 0.5
    assert inception_score(grouped, splits=1)[0] == pytest.approx(10.0)
    assert inception_score(torch.eye(3))[0] == pytest.approx(1.0)  # fewer rows than splits: one per split


def test_inception_score_splits_differ() -> None:
    probs = torch.cat([torch.eye(4), torch.full((4, 4), 0.25)])  # split 1: IS 4, split 2: IS 1
    mean, std = inception_score(probs, splits=2, shuffle=False)
    assert mean == pytest.approx(2.5) and std == pytest.approx(1.5)


class FirstPixels(nn.Module):
    """Classifies a 1x2x2 image as the index of its largest pixel."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)


def test_classifier_accuracy() -> None:
    x = torch.eye(4).repeat(3, 1).reshape(12, 1, 2, 2)
    y = torch.arange(4).repeat(3)
    y[[0, 5, 10]] = (y[[0, 5, 10]] + 1) % 4
    model = FirstPixels().train()
    assert classifier_accuracy(model, x, y, batch_size=5) == pytest.approx(9 / 12)
    assert model.training  # mode restored
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        classifier_accuracy(model, x, y, batch_size=0)


def test_inception_fid_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(DataError, match="Inception weights not found") as info:
        inception_fid(path, images(4), images(4))
    assert str(path) in str(info.value)


def test_inception_fid_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="broken.pth"):
        inception_fid(path, images(4), images(4))


CONSTRUCTED: list[str] = []


class Payload:
    def __init__(self) -> None:
        CONSTRUCTED.append("ran")

    def __reduce__(self):
        return (Payload, ())


def test_inception_fid_refuses_arbitrary_pickle(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"w": Payload()}, path)
    CONSTRUCTED.clear()
    with pytest.raises(DataError, match="evil.pth"):
        inception_fid(path, images(4), images(4))
    assert CONSTRUCTED == []


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised InceptionV3 state dict in torch-fidelity's layout (no download)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fe, "load_state_dict_from_url", lambda *a, **k: {})
        mp.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path_factory.mktemp("inception") / "weights.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def one_thread():
    """Inception on CPU is pathologically slow when torch's threads compete with other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_inception_fid_local_weights_no_network(random_inception_weights: Path, monkeypatch, one_thread) -> None:
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(fe, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    a, b = images(2, seed=30), images(2, shift=0.8, seed=31)  # grayscale: repeated to 3 channels
    result = inception_fid(random_inception_weights, a, b, batch_size=1)
    assert math.isfinite(result) and result > 0


@pytest.mark.slow
def test_inception_fid_identical_is_zero(random_inception_weights: Path, one_thread) -> None:
    a, b = images(6, seed=30), images(6, shift=0.8, seed=31)
    assert abs(inception_fid(random_inception_weights, a, a)) < 1e-3 * inception_fid(random_inception_weights, a, b)
