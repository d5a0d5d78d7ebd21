"""Compiled GAN iterations (torch.compile) against the eager steps they stand in for."""

import pytest
import torch

from pipeline.gan.compiled import CompiledIteration
from pipeline.gan.kinds import Objective
from pipeline.gan.losses import get_loss
from pipeline.gan.train import GanState, VicinalConditioning, train_gan
from pipeline.gan.vicinal import VicinalSampler, Vicinity
from pipeline.nets.mlp import MLPDiscriminator, MLPGenerator

LR = 1e-3


def _state(seed: int = 0) -> GanState:
    torch.manual_seed(seed)
    G = MLPGenerator(2, 2, hidden=16, depth=2, periodic=True)  # batch norm: its statistics are mutated in the graph
    D = MLPDiscriminator(2, hidden=16, depth=2, periodic=True)
    return GanState.create(G, D, LR, LR, (0.5, 0.999))


def _train(state: GanState, steps: int, compiled: bool) -> GanState:
    g = torch.Generator().manual_seed(1)
    y = torch.arange(12).float() / 12
    x = torch.stack([torch.cos(2 * torch.pi * y), torch.sin(2 * torch.pi * y)], 1) + 0.02 * torch.randn(
        12, 2, generator=g
    )
    cond = VicinalConditioning(
        x, VicinalSampler(y, Vicinity("soft", sigma=0.05, kappa=0.1, nu=200.0))
    )  # weighted losses
    torch.manual_seed(100 + state.step)
    return train_gan(
        state,
        cond,
        objective=Objective(get_loss("bce")),
        z_dim=2,
        steps=steps,
        n_dis=2,
        batch_size=16,
        ema_decay=0.0,
        ema_start=0,
        compiled=compiled,
        log_every=1,
    )


def _before_batch_norm(net: torch.nn.Sequential) -> set[str]:
    """A linear layer's bias right before batch norm has a zero gradient in exact arithmetic; Adam
    turns rounding noise into steps of up to about lr, so that bias, and the running mean that
    absorbs it, can differ by a few lr between two exact implementations."""
    return {
        key
        for i in range(len(net) - 1)
        if isinstance(net[i + 1], torch.nn.BatchNorm1d)
        for key in (f"net.{i}.bias", f"net.{i + 1}.running_mean")
    }


def _assert_close(a: GanState, b: GanState) -> None:
    for name in ("G", "D"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert sa.keys() == sb.keys()
        loose = _before_batch_norm(getattr(a, name).net)
        for k in sa:  # weights, and G's batch-norm statistics (running mean/var, batches seen)
            atol = 5 * LR * a.step if k in loose else 1e-5
            torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=atol, msg=f"{name}.{k}")
    assert len(_before_batch_norm(a.G.net)) == 4
    for name in ("opt_g", "opt_d"):
        oa, ob = getattr(a, name).state_dict()["state"], getattr(b, name).state_dict()["state"]
        assert oa.keys() == ob.keys()
        for i in oa:
            assert oa[i].keys() == ob[i].keys() == {"step", "exp_avg", "exp_avg_sq"}
            for k in oa[i]:
                torch.testing.assert_close(oa[i][k], ob[i][k], rtol=1e-4, atol=1e-6, msg=f"{name}[{i}].{k}")
    assert [r["step"] for r in a.history] == [r["step"] for r in b.history]
    for ra, rb in zip(a.history, b.history, strict=True):
        assert ra["d_loss"] == pytest.approx(rb["d_loss"], rel=1e-4)
        assert ra["g_loss"] == pytest.approx(rb["g_loss"], rel=1e-4)


def test_compiled_iterations_do_what_the_eager_steps_do_and_resume_eagerly():
    eager = _train(_state(), 4, compiled=False)
    fast = _train(_state(), 4, compiled=True)
    assert eager.step == fast.step == 4
    _assert_close(fast, eager)
    assert not torch.equal(fast.G.net[0].weight, _state().G.net[0].weight)  # it did train

    # the compiled run's optimiser state is torch's Adam state: an eager run resumes from it
    resumed = _state(seed=5)
    resumed.load_state_dict(fast.state_dict())
    _train(resumed, 6, compiled=False)
    _train(eager, 6, compiled=False)
    _assert_close(resumed, eager)


def test_compiled_iteration_needs_optimisers_over_the_nets_parameters():
    state = _state()
    with pytest.raises(ValueError, match="optimiser must hold the net's trainable parameters"):
        CompiledIteration(state.G, state.D, state.opt_d, state.opt_g, Objective(get_loss("bce")), 2, lambda x: x)
