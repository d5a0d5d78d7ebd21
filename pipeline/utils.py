"""Small helpers shared by library code: seeding and batching."""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from pipeline.nets.backbone import Backbone
    from pipeline.runtime import Runtime

Progress = Callable[[int, dict[str, float]], None]
"""Progress callback: (steps completed so far, latest scalar metrics)."""


def watched(progress: Progress | None, check: Callable[[int, Any], None] | None, model: Any) -> Progress:
    """A training loop's progress callback that also runs check(step, model) at each logged step
    (a study measures the model there, and may stop the training by raising)."""

    def logged(step: int, record: dict[str, float]) -> None:
        if progress:
            progress(step, record)
        if check:
            check(step, model)

    return logged


def minimise(
    opt: torch.optim.Optimizer,
    batch_loss: Callable[[], torch.Tensor],
    steps: int,
    *,
    sched: torch.optim.lr_scheduler.LRScheduler | None = None,
    log_every: int = 50,
    progress: Progress | None = None,
    rt: Runtime | None = None,
) -> list[dict[str, float]]:
    """`steps` optimiser steps on batch_loss() (one fresh mini-batch per call); returns the loss
    averaged over each `log_every` steps as [{"step", "loss"}], each record also sent to progress."""
    history, acc, n_acc = [], 0.0, 0
    for step in range(1, steps + 1):
        loss = batch_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        acc, n_acc = acc + loss.item(), n_acc + 1
        if step % log_every == 0 or step == steps:
            # the mean over the ranks under torchrun (a float64: one process keeps acc as it is)
            mean = acc if rt is None else float(rt.mean(torch.tensor(acc, dtype=torch.float64)))
            history.append({"step": float(step), "loss": mean / n_acc})
            acc, n_acc = 0.0, 0
            if progress:
                progress(step, history[-1])
    return history


def seed_everything(seed: int) -> None:
    """One seed drives Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batches(n: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of a module's parameters (the CPU for a module without any)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits of `model` on `x`, in eval mode and batches."""
    was_training = model.training
    model.eval()
    device = device_of(model)
    out = torch.cat([model(x[s].to(device)).cpu() for s in batches(len(x), batch_size)]) if len(x) else torch.empty(0)
    model.train(was_training)
    return out


@torch.no_grad()
def features_of(model: Backbone, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """`model.features(x)` (penultimate features, or an encoder's code) in eval mode and batches."""
    was_training = model.training
    model.eval()
    device = device_of(model)
    out = (
        torch.cat([model.features(x[s].to(device)).cpu() for s in batches(len(x), batch_size)])
        if len(x)
        else torch.empty(0)
    )
    model.train(was_training)
    return out


def label_positions(labels: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Index in `labels` of each value of y (every y is one of the labels)."""
    sorted_labels, perm = labels.sort()
    return perm[torch.searchsorted(sorted_labels, y).clamp(max=len(labels) - 1)]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path) then rename tmp onto path, so readers never see half a file. The file
    gets the permissions a plain open() would give it (mkstemp's are owner-only). Under torchrun
    only rank 0 writes (every file of the project goes through here)."""
    from pipeline.runtime import is_main

    if not is_main():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(obj, path: Path) -> None:
    """torch.save, atomically. Written through a file handle so that the zip archive inside is
    named "archive", not after the random temp file: the same object gives the same bytes (and
    the same DVC hash) on every run."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    atomic_write(path, write)
