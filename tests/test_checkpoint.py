import os

import pytest
import torch

from pipeline.checkpoint import load_checkpoint, save_checkpoint
from pipeline.errors import CheckpointError
from pipeline.gan.kinds import Objective
from pipeline.gan.losses import get_loss
from pipeline.gan.train import ClassConditioning, GanState, train_gan
from pipeline.nets import Discriminator, Generator


def _payload():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    return {"model": net.state_dict(), "step": 7, "config": '{"a": 1}', "history": [{"step": 1.0, "loss": 0.5}]}


def test_round_trip(tmp_path):
    path = tmp_path / "c.pt"
    payload = _payload()
    save_checkpoint(payload, path)
    loaded = load_checkpoint(path)
    assert loaded["step"] == 7 and loaded["config"] == '{"a": 1}' and loaded["history"] == payload["history"]
    for k, v in payload["model"].items():
        assert torch.equal(loaded["model"][k], v)
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind


def test_missing_truncated_and_tampered(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "absent.pt")
    path = tmp_path / "c.pt"
    save_checkpoint(_payload(), path)
    data = path.read_bytes()

    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.pt: unreadable checkpoint"):
        load_checkpoint(tmp_path / "trunc.pt")

    # flip bytes inside the stored weights: still a valid zip, so only the digest can tell
    weights = _payload()["model"]["0.weight"]
    tampered = bytearray(data)
    i = tampered.find(torch.load(path, weights_only=True)["payload"]["model"]["0.weight"].numpy().tobytes()[:8])
    assert i > 0 and weights.numel()
    tampered[i] ^= 0xFF
    (tmp_path / "flip.pt").write_bytes(bytes(tampered))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(tmp_path / "flip.pt")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickle_with_code_is_rejected_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"format": "cgankd-checkpoint-v1", "payload": _Evil(), "sha256": ""}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "evil.pt")
    assert (
        str(err.value) == f"{tmp_path / 'evil.pt'}: refused: not a plain-tensor checkpoint (it would run code to load)"
    )
    assert not (tmp_path / "pwned").exists()


def test_foreign_file_is_not_a_checkpoint(tmp_path):
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a cgankd checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def _gan_state(seed: int) -> GanState:
    torch.manual_seed(seed)
    return GanState.create(
        Generator(8, 8, 1, width=8, num_classes=3),
        Discriminator(8, 1, width=8, num_classes=3),
        2e-4,
        2e-4,
        (0.0, 0.999),
    )


def _train(state, x, y, **kw):
    return train_gan(
        state,
        ClassConditioning(x, y, 3),
        objective=Objective(get_loss("hinge")),
        z_dim=8,
        steps=6,
        n_dis=2,
        batch_size=4,
        ema_decay=0.9,
        ema_start=1,
        log_every=1,
        **kw,
    )


def test_gan_resume_matches_uninterrupted_run(tmp_path):
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(12, 1, 8, 8, generator=g) * 2 - 1, torch.arange(12) % 3

    full = _gan_state(0)
    _train(full, x, y)

    path = tmp_path / "gan.pt"

    def interrupt(step, _):
        if step == 4:
            raise KeyboardInterrupt

    first = _gan_state(0)
    with pytest.raises(KeyboardInterrupt):
        _train(
            first,
            x,
            y,
            checkpoint_every=3,
            on_checkpoint=lambda s: save_checkpoint(s.state_dict(), path),
            progress=interrupt,
        )

    resumed = _gan_state(123)  # different init: everything must come from the checkpoint
    torch.manual_seed(999)
    resumed.load_state_dict(load_checkpoint(path))
    assert resumed.step == 3
    _train(resumed, x, y)
    assert resumed.step == 6
    assert [r["d_loss"] for r in resumed.history] == [r["d_loss"] for r in full.history]
    for a, b in zip(resumed.G_ema.state_dict().values(), full.G_ema.state_dict().values()):
        assert torch.equal(a, b)


def test_saved_files_are_byte_identical_across_runs(tmp_path):
    """Outputs hash the same on every run (DVC compares hashes): no temp-file name inside the archive."""
    payload = {"w": torch.arange(6.0)}
    save_checkpoint(payload, tmp_path / "a.pt")
    save_checkpoint(payload, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
