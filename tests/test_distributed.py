"""DDP under gloo: 2 processes give the one-process result at the same global batch and seed.

Each training loop (classifier with and without a KD method, class-conditional GAN, CcGAN with
soft vicinities and DiffAugment-free D, ratio net) runs once in this process and once in 2
spawned processes. The nets here have no batch norm: on CPU each rank normalises with its own
shard's statistics (PyTorch has no SyncBatchNorm on CPU; pipeline/runtime.py), the one
difference with batch norm. Without it the updates agree up to float rounding (atol 1e-5).
The ratio net's penalty squares the mean over each rank's fakes, so with a penalty it agrees
only to O(1 / batch): checked at the stated tolerance. The GAN's Adam uses eps 1e-4 here: with
torch's 1e-8, a gradient at rounding level (a ReLU unit active on one sample) is blown up to a
step of size lr, in one process and in two alike, but not the same step.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from pipeline import runtime
from pipeline.nets.backbone import Backbone

STEPS = 6


class _Net(Backbone):
    """A batch-norm-free backbone (two stages) for exact comparisons."""

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(in_dim, 16), nn.Linear(16, 16)
        self.feature_dim = 16
        self.head = nn.Linear(16, num_classes)

    def stage_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = torch.relu(self.a(x))
        return [h, torch.relu(self.b(h))]


def _no_bn(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, nn.Identity())
        else:
            _no_bn(child)
    return module


def _data():
    g = torch.Generator().manual_seed(123)
    x = torch.randn(64, 2, generator=g)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()  # 4 classes
    u = torch.rand(64, generator=g)  # continuous labels in [0, 1]
    return x, y, u


def _weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _train_all(rt: runtime.Runtime) -> dict[str, dict[str, torch.Tensor]]:
    """Every loop, from fixed initial weights, under runtime `rt`."""
    from pipeline.distill.methods import BLKD
    from pipeline.distill.train import train_classifier
    from pipeline.gan.kinds import Objective
    from pipeline.gan.losses import get_loss
    from pipeline.gan.train import ClassConditioning, GanState, VicinalConditioning, train_gan
    from pipeline.gan.vicinal import VicinalSampler, Vicinity
    from pipeline.nets.mlp import MLPDiscriminator, MLPGenerator
    from pipeline.subsample.ratio import RatioNet, train_ratio

    x, y, u = _data()
    out: dict[str, dict[str, torch.Tensor]] = {}

    torch.manual_seed(0)
    student, teacher = _Net(2, 4), _Net(2, 4)
    train_classifier(teacher, x, y, steps=STEPS, batch_size=16, lr=0.1, log_every=2, rt=rt)
    out["teacher"] = _weights(teacher)
    train_classifier(
        student, x, y, steps=STEPS, batch_size=16, lr=0.1, method=BLKD(), teacher=teacher, log_every=2, rt=rt
    )
    out["student_blkd"] = _weights(student)

    for name, cond, label_input in [
        ("gan_class", ClassConditioning(x, y, 4), "class"),
        ("gan_vicinal", VicinalConditioning(x, VicinalSampler(u, Vicinity("soft", 0.05, 0.1, 400.0))), "nli"),
    ]:
        torch.manual_seed(1)
        kw = {"label_input": label_input, "num_classes": 4 if label_input == "class" else 0}
        G = _no_bn(MLPGenerator(4, 2, 16, depth=2, **kw))
        D = MLPDiscriminator(2, 16, depth=2, **kw)
        state = GanState.create(G, D, 1e-3, 1e-3, (0.5, 0.999))
        for group in [*state.opt_g.param_groups, *state.opt_d.param_groups]:
            group["eps"] = 1e-4  # Adam would blow a rounding-level gradient (a unit active on one sample) up to lr
        train_gan(
            state, cond, objective=Objective(get_loss("hinge")), z_dim=4, steps=STEPS, n_dis=2, batch_size=16,
            ema_decay=0.9, ema_start=2, log_every=2, rt=rt,
        )  # fmt: skip
        out[name] = {**{f"G.{k}": v for k, v in _weights(G).items()}, **{f"D.{k}": v for k, v in _weights(D).items()}}
        out[name]["history"] = torch.tensor([[r["d_loss"], r["g_loss"]] for r in state.history])

    h_fake = torch.randn(64, 3, 2, generator=torch.Generator().manual_seed(5)) + 0.5
    # per_class: DRE-F-SP's heads, some of which a rank's share of a batch may leave out
    for name, penalty, label in [
        ("ratio", 0.0, "class"),
        ("ratio_penalty", 1.0, "class"),
        ("ratio_per_class", 0.0, "per_class"),
    ]:
        torch.manual_seed(2)
        net = RatioNet(2, width=16, depth=2, dropout=0.0, label=label, num_classes=4, embed_dim=4, norm="none")
        train_ratio(net, x, y, h_fake, penalty=penalty, steps=STEPS, batch_size=16, lr=1e-2, log_every=2, rt=rt)
        out[name] = _weights(net)
    return out


def _worker(rank: int, port: int, path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank))
    torch.set_num_threads(1)
    rt = runtime.start("cpu")
    try:
        results = _train_all(rt)
        if rank == 0:
            torch.save(results, path)
    finally:
        runtime.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("ddp") / "two.pt"
    mp.spawn(_worker, args=(_free_port(), str(path)), nprocs=2, join=True)
    return _train_all(runtime.LOCAL), torch.load(path)


@pytest.mark.parametrize("loop", ["teacher", "student_blkd", "gan_class", "gan_vicinal", "ratio", "ratio_per_class"])
def test_two_processes_match_one_process(runs, loop: str) -> None:
    one, two = runs
    assert one[loop].keys() == two[loop].keys()
    for key, value in one[loop].items():
        torch.testing.assert_close(two[loop][key], value, atol=1e-5, rtol=1e-4, msg=f"{loop}: {key}")


def test_the_weights_moved(runs) -> None:
    """The comparison is not between untrained nets: training changed every loop's weights."""
    one, _ = runs
    torch.manual_seed(0)
    assert any((a != b).any() for a, b in zip(_Net(2, 4).state_dict().values(), one["teacher"].values()))
    assert one["gan_vicinal"]["history"].shape == (3, 2)


def test_the_dre_penalty_differs_only_at_the_stated_tolerance(runs) -> None:
    one, two = runs
    diff = max(float((one["ratio_penalty"][k] - two["ratio_penalty"][k]).abs().max()) for k in one["ratio_penalty"])
    # the per-rank square of the fakes' mean psi: measured 0.008 after 6 Adam steps of lr 0.01 (weights
    # move by up to 0.06 in that time); without the penalty the two agree to 1e-5 (above)
    assert 0 < diff < 0.02


def test_batch_must_split_evenly() -> None:
    from pipeline.errors import ParamsError

    with pytest.raises(ParamsError, match="gan.batch_size 15 is not divisible by the 2 processes"):
        runtime.Runtime(world=2).check_batch(15, "gan.batch_size")


def test_one_process_is_local_and_writes(tmp_path: Path) -> None:
    from pipeline.utils import atomic_write

    rt = runtime.start("cpu")
    try:
        assert rt == runtime.LOCAL and runtime.is_main()
        atomic_write(tmp_path / "f", lambda p: p.write_text("x"))
        assert (tmp_path / "f").read_text() == "x"
    finally:
        runtime.stop()


def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    from pipeline.errors import ParamsError

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ParamsError, match="no CUDA device"):
        runtime.resolve_device("cuda")
    assert runtime.resolve_device("auto") == torch.device("cpu")
