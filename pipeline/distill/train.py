"""Supervised training of teachers and students (optionally distilling from a teacher)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from pipeline.augment import random_shift
from pipeline.distill.losses import LOSSES
from pipeline.distill.methods import Method
from pipeline.errors import ParamsError
from pipeline.nets.backbone import Backbone, KDOut
from pipeline.runtime import Runtime, current
from pipeline.utils import Progress, batches, device_of

Tensor = torch.Tensor

# the most memory the teacher's outputs on the whole training set may take to be computed once
# (un-augmented batches only); above it the teacher runs on every batch
TEACHER_CACHE_BYTES = 2 << 30


def train_classifier(
    model: Backbone,
    x: Tensor,
    y: Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    max_shift: int = 0,
    loss: str = "ce",
    method: Method | None = None,
    teacher: Backbone | None = None,
    x_fake: Tensor | None = None,
    y_fake: Tensor | None = None,
    fake_fraction: float | None = None,
    log_every: int = 50,
    progress: Progress | None = None,
    validate: Callable[[nn.Module], float] | None = None,
    rt: Runtime | None = None,
    teacher_cache_bytes: int = TEACHER_CACHE_BYTES,
) -> list[dict[str, float]]:
    """SGD with a cosine schedule for `steps` mini-batches drawn uniformly from (x, y), plus, when
    fakes are given, a `fake_fraction` share of each batch drawn from (x_fake, y_fake) (default:
    in proportion to their number, i.e. uniform over the union). `loss` names the task loss; with a
    KD `method` (distill/methods.py), the loss is method(student, teacher outputs on the same
    augmented batch, labels, sample indices, task loss) instead, and the method's own parameters
    (a FitNet regressor, CRD's heads) train with the model. Sample indices count the real samples
    first, then the fakes. Without augmentation (`max_shift` 0) the teacher's outputs on every
    training sample are computed once before the first step (when they take at most
    `teacher_cache_bytes` and the batches would show the teacher more images than that) and looked
    up by sample index: the same numbers without a teacher forward per step.

    With `validate` (a validation score of the model in eval mode, higher is better), the model is
    scored at every logged step (record key "val") and ends with the weights of the best score,
    the earliest on ties (the convergence rule: the student is judged at its best validation
    step, not at an arbitrary last one); the records then carry "best_step".

    Under torchrun (`rt`, pipeline.runtime) every rank draws and augments the same global batch and
    trains on its share of it, the model and the method's parameters under one DDP wrapper; rank 0's
    validation score decides the best step on every rank. The model ends on the CPU."""
    rt = rt or current()  # the process's runtime (pipeline.runtime.start); LOCAL unless started
    loss_fn = LOSSES[loss]
    if method is not None and teacher is None:
        raise ValueError("a KD method needs a teacher")
    if method is not None and method.per_process_state and rt.distributed:
        raise ParamsError(f"{type(method).__name__} keeps a memory bank per process: train it in one process")
    model, teacher = rt.prepare(model), None if teacher is None else rt.prepare(teacher)
    if method is not None:
        method = rt.prepare(method)
    objective = rt.wrap(_Objective(model, method, loss_fn))
    parameters = [*model.parameters(), *(method.parameters() if method is not None else ())]
    opt = torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    if teacher is not None:
        teacher.eval()
    model.train()
    n_fake = 0 if x_fake is None else len(x_fake)
    cache = None
    if teacher is not None and method is not None and max_shift == 0 and steps * batch_size > len(x) + n_fake:
        cache = _teacher_outputs(teacher, x if x_fake is None else torch.cat([x, x_fake]), teacher_cache_bytes)
    batch_size = min(batch_size, len(x) + n_fake)
    rt.check_batch(batch_size, "batch_size")
    if n_fake:
        share = fake_fraction if fake_fraction is not None else n_fake / (len(x) + n_fake)
        n_fake_batch = min(round(batch_size * share), batch_size)
    else:
        n_fake_batch = 0
    history: list[dict[str, float]] = []
    acc, n_acc = 0.0, 0
    best: tuple[float, int, dict[str, Tensor]] | None = None  # (score, step, weights)
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(x), (batch_size - n_fake_batch,))
        xb, yb = x[idx], y[idx]
        if n_fake_batch:
            assert x_fake is not None and y_fake is not None
            fidx = torch.randint(0, n_fake, (n_fake_batch,))
            xb, yb = torch.cat([xb, x_fake[fidx]]), torch.cat([yb, y_fake[fidx]])
            idx = torch.cat([idx, len(x) + fidx])
        xb = random_shift(xb, max_shift)  # on the global batch: the same shifts as in one process
        xb, yb, idx = rt.shard(xb), rt.shard(yb), rt.shard(idx)
        t = None
        if cache is not None:
            t = _take(cache, idx, xb.device)
        elif teacher is not None and method is not None:
            with torch.no_grad():
                t = teacher.forward_kd(xb)
        with rt.rank_rng(step):
            value = objective(xb, yb, idx, t)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        sched.step()
        acc, n_acc = acc + value.item(), n_acc + 1
        if step % log_every == 0 or step == steps:
            record: dict[str, float] = {
                "step": float(step),
                "loss": float(rt.mean(torch.tensor(acc, dtype=torch.float64))) / n_acc,
                "lr": float(sched.get_last_lr()[0]),
            }
            if validate is not None:
                record["val"] = rt.broadcast(_score(model, validate))
                if best is None or record["val"] > best[0]:
                    best = (record["val"], step, copy.deepcopy(model.state_dict()))
                record["best_step"] = float(best[1])
            history.append(record)
            acc, n_acc = 0.0, 0
            if progress:
                progress(step, record)
    if best is not None:
        model.load_state_dict(best[2])
    model.eval().cpu()
    if teacher is not None:
        teacher.cpu()
    if method is not None:
        method.cpu()
    return history


@torch.no_grad()
def _teacher_outputs(teacher: Backbone, x: Tensor, max_bytes: int, batch_size: int = 512) -> KDOut | None:
    """teacher.forward_kd on every row of x (eval mode, batches), kept on the CPU; None when that
    would take more than max_bytes."""
    device = device_of(teacher)
    probe = teacher.forward_kd(x[:1].to(device))
    per_sample = sum(t.numel() * t.element_size() for t in (probe.logits, *probe.maps, probe.embedding))
    if per_sample * len(x) > max_bytes:
        return None
    outs = [teacher.forward_kd(x[s].to(device)) for s in batches(len(x), batch_size)]
    return KDOut(
        torch.cat([o.logits.cpu() for o in outs]),
        [torch.cat([o.maps[i].cpu() for o in outs]) for i in range(len(probe.maps))],
        torch.cat([o.embedding.cpu() for o in outs]),
    )


def _take(cache: KDOut, idx: Tensor, device: torch.device) -> KDOut:
    """The cached teacher outputs of the samples idx, on `device`."""
    return KDOut(cache.logits[idx].to(device), [m[idx].to(device) for m in cache.maps], cache.embedding[idx].to(device))


class _Objective(nn.Module):
    """The training loss as one module, so that DDP sees every trained parameter (the model's and
    the KD method's) in one forward."""

    def __init__(self, model: Backbone, method: Method | None, loss_fn: Callable[..., Tensor]) -> None:
        super().__init__()
        self.model, self.method, self.loss_fn = model, method, loss_fn

    def forward(self, x: Tensor, y: Tensor, idx: Tensor, teacher_out: KDOut | None) -> Tensor:
        if self.method is None:
            return self.loss_fn(self.model(x), y)
        assert teacher_out is not None
        return self.method(self.model.forward_kd(x), teacher_out, y, idx, self.loss_fn)


def _score(model: nn.Module, validate: Callable[[nn.Module], float]) -> float:
    """validate(model) in eval mode, then back to training mode."""
    model.eval()
    try:
        return float(validate(model))
    finally:
        model.train()
