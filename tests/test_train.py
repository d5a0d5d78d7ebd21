import pytest
import torch
from torch import nn

from pipeline.augment import random_shift
from pipeline.distill.train import train_classifier


class Recorder(nn.Module):
    """A linear classifier that remembers the mean pixel of every image it was trained on."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        if self.training:
            self.seen.append(x.mean(dim=(1, 2, 3)).detach())
        return self.linear(x.flatten(1))


def _fraction_of_fakes(fake_fraction, n_real=10, n_fake=30):
    torch.manual_seed(0)
    model = Recorder()
    x_real, x_fake = -torch.ones(n_real, 1, 2, 2), torch.ones(n_fake, 1, 2, 2)  # reals are -1, fakes +1
    train_classifier(
        model,
        x_real,
        torch.zeros(n_real, dtype=torch.long),
        steps=20,
        batch_size=8,
        lr=0.01,
        x_fake=x_fake,
        y_fake=torch.ones(n_fake, dtype=torch.long),
        fake_fraction=fake_fraction,
    )
    seen = torch.cat(model.seen)
    assert len(seen) == 20 * 8
    return float((seen > 0).float().mean())


def test_fake_fraction_fixes_the_batch_mix():
    assert _fraction_of_fakes(0.25) == pytest.approx(0.25)  # 2 of every 8
    assert _fraction_of_fakes(0.5) == pytest.approx(0.5)
    assert _fraction_of_fakes(None) == pytest.approx(0.75)  # 30 / (10 + 30): uniform over the union


def test_random_shift_moves_content_and_fills_background():
    x = -torch.ones(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0
    torch.manual_seed(0)
    out = random_shift(x.repeat(200, 1, 1, 1), max_shift=1)
    assert out.unique().tolist() == [-1.0, 1.0]  # nearest sampling: no new grey levels, border is background
    positions = {tuple(torch.nonzero(o[0] == 1)[0].tolist()) for o in out}
    assert positions == {(r, c) for r in (1, 2, 3) for c in (1, 2, 3)}
    assert torch.equal(random_shift(x, 0), x)


def test_random_shift_passes_gradients_to_the_images():
    """D sees shifted fakes (DiffAugment): G must still get a gradient through the shift."""
    x = torch.randn(4, 1, 8, 8, requires_grad=True)
    torch.manual_seed(0)
    (random_shift(x, 2) * torch.randn(4, 1, 8, 8)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_g_step_skips_d_weight_gradients_but_updates_g_as_before():
    from pipeline.gan.kinds import Objective
    from pipeline.gan.losses import get_loss
    from pipeline.gan.train import g_step
    from pipeline.nets.mlp import MLPDiscriminator, MLPGenerator

    torch.manual_seed(0)
    G, D = MLPGenerator(2, hidden=16, depth=2), MLPDiscriminator(hidden=16, depth=2)
    D.net[0].bias.requires_grad_(False)  # a frozen parameter must stay frozen
    y = torch.rand(8)
    loss = get_loss("bce")

    # reference: the plain update, with D's weight gradients computed
    G_ref = MLPGenerator(2, hidden=16, depth=2)
    G_ref.load_state_dict(G.state_dict())
    opt_ref = torch.optim.Adam(G_ref.parameters(), lr=0.1)
    torch.manual_seed(1)
    ref_loss = loss.g(D(G_ref(torch.randn(8, 2), y), y))
    ref_loss.backward()
    opt_ref.step()
    assert D.net[0].weight.grad is not None
    D.zero_grad(set_to_none=True)

    opt = torch.optim.Adam(G.parameters(), lr=0.1)
    torch.manual_seed(1)
    out = g_step(G, D, opt, Objective(loss), y, torch.randn(8, 2))
    assert torch.equal(out, ref_loss.detach())
    for a, b in zip(G.parameters(), G_ref.parameters()):
        assert torch.equal(a, b)
    assert all(p.grad is None for p in D.parameters())
    assert D.net[0].weight.requires_grad and not D.net[0].bias.requires_grad


def test_keep_best_ends_with_the_weights_of_the_best_validation_step():
    """validate peaks at the second logged step (step 10): the model ends with exactly the weights it
    had there, not those of the last step, and the records say so."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    x, y = torch.randn(32, 1, 2, 2), torch.randint(0, 2, (32,))
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    scores = iter([0.5, 0.9, 0.7, 0.9])  # steps 5, 10, 15, 20: a tie later must not replace the earlier best

    def progress(step, record):
        snapshots[step] = {k: v.clone() for k, v in model.state_dict().items()}

    history = train_classifier(
        model,
        x,
        y,
        steps=20,
        batch_size=8,
        lr=0.5,
        log_every=5,
        progress=progress,
        validate=lambda m: (next(scores), m.training)[0],
    )
    assert [r["val"] for r in history] == [0.5, 0.9, 0.7, 0.9]
    assert [r["best_step"] for r in history] == [5, 10, 10, 10]
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[10][k])
    assert not torch.equal(snapshots[10]["1.weight"], snapshots[20]["1.weight"])  # training did move on
    assert not model.training


def test_validate_sees_the_model_in_eval_mode_and_training_resumes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    modes, after = [], []

    def validate(m):
        modes.append(m.training)
        return 0.0

    def progress(step, record):
        after.append(model.training)

    train_classifier(
        model,
        torch.randn(16, 1, 2, 2),
        torch.randint(0, 2, (16,)),
        steps=10,
        batch_size=4,
        lr=0.1,
        log_every=5,
        validate=validate,
        progress=progress,
    )
    assert modes == [False, False] and after == [True, True]


def _distil(method_name: str, max_shift: int, monkeypatch, cache_bytes: int):
    """A CNN student distilled from a fixed ResNet teacher on reals + fakes; returns its weights and
    how many images the teacher's forward_kd saw."""
    from pipeline.distill.methods import build_method
    from pipeline.nets import build_classifier
    from pipeline.params import BlkdParams, CrdParams, FitNetParams, RkdParams

    torch.manual_seed(0)
    teacher, student = build_classifier("resnet", 1, 3, 4), build_classifier("cnn", 1, 3, 4)
    x, y = torch.randn(24, 1, 8, 8), torch.randint(0, 3, (24,))
    x_fake, y_fake = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    section = {"blkd": BlkdParams, "fitnet": FitNetParams, "rkd": RkdParams, "crd": CrdParams}[method_name]()
    method = build_method(method_name, section, student, teacher, x[:2], 40)
    seen = []
    forward_kd = teacher.forward_kd
    monkeypatch.setattr(teacher, "forward_kd", lambda xb: seen.append(len(xb)) or forward_kd(xb))
    train_classifier(
        student, x, y, steps=6, batch_size=8, lr=0.1, max_shift=max_shift, method=method, teacher=teacher,
        x_fake=x_fake, y_fake=y_fake, fake_fraction=0.5, teacher_cache_bytes=cache_bytes,
    )  # fmt: skip
    return {k: v.clone() for k, v in student.state_dict().items()}, sum(seen)


@pytest.mark.parametrize("name", ["blkd", "fitnet", "rkd", "crd"])
def test_un_augmented_kd_looks_the_teacher_up_once_with_the_same_result(name, monkeypatch):
    """Without augmentation the teacher sees each of the 40 training images once (plus a one-image
    size probe), not 6 batches of 8, and the student ends with exactly the weights it gets when the
    teacher runs on every batch (a cache too small for the outputs)."""
    cached, n_cached = _distil(name, 0, monkeypatch, 2 << 30)
    direct, n_direct = _distil(name, 0, monkeypatch, 0)
    assert (n_cached, n_direct) == (1 + 40, 1 + 6 * 8)
    for k, v in direct.items():
        assert torch.equal(cached[k], v), k


def test_augmented_kd_runs_the_teacher_on_every_shifted_batch(monkeypatch):
    _, n = _distil("blkd", 1, monkeypatch, 2 << 30)
    assert n == 6 * 8
