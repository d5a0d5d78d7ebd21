"""Where training runs: the device, and the process group under torchrun (DistributedDataParallel).

One process (the default, and every test) is `LOCAL`: CPU, rank 0 of 1, nothing wrapped.
Under `torchrun --nproc-per-node N -m pipeline STAGE -e EXP` (or `cgankd STAGE -e EXP --nproc N`,
which launches torchrun), `start()` joins the process group that torchrun describes in the
environment (gloo on CPU, nccl on GPU) and every stage runs on every rank:

- The training loops (classifiers, GANs, ratio nets) draw each *global* batch from the shared
  random stream, identically on every rank (same seed, same draws), and each rank computes its
  `shard` of it: rank r takes rows [r B/N, (r + 1) B/N). Gradients are averaged by DDP, so for
  losses that are means over the batch the update is the one-process update at the same global
  batch size. Randomness inside a rank's share (dropout, DiffAugment shifts) comes from the
  rank's own stream (`rank_rng`), so ranks do not repeat each other's masks.
- Batch norm: SyncBatchNorm on GPU (statistics over the global batch, as one process has them).
  PyTorch has no SyncBatchNorm on CPU, so on gloo each rank normalises with its own shard's
  statistics (running statistics come from rank 0: DDP broadcasts buffers).
- Everything else (data preparation, sampling, evaluation) runs identically on every rank, and
  only rank 0 writes files (`pipeline.utils.atomic_write`) and MLflow runs (`pipeline.tracking`).
- Checkpoints hold plain (unwrapped) state dicts and the shared random stream, so a run resumes
  with any number of processes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from pipeline.errors import ParamsError

Tensor = torch.Tensor
M = TypeVar("M", bound=nn.Module)
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Runtime:
    device: torch.device = torch.device("cpu")
    rank: int = 0
    world: int = 1
    amp: bool = False  # bf16 autocast of G and D forwards (GPU only)

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def check_batch(self, batch_size: int, what: str) -> None:
        if batch_size % self.world:
            raise ParamsError(
                f"{what} {batch_size} is not divisible by the {self.world} processes (each takes an equal share)"
            )

    def shard(self, t: Tensor) -> Tensor:
        """This rank's rows of a global batch, on the device."""
        if self.distributed:
            n = len(t) // self.world
            t = t[self.rank * n : (self.rank + 1) * n]
        if t.device == self.device:
            return t
        t = t.to(self.device, non_blocking=True)
        return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t  # images, as the nets

    def wrap(self, module: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """The module under DistributedDataParallel (SyncBatchNorm on GPU), or itself in one process.
        The wrapper shares the module's parameters: the module itself stays the one to checkpoint.
        `find_unused_parameters`: for modules whose forward may leave some parameters out (DRE-F-SP's
        per-class heads on a batch that misses a class)."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        if self.cuda:
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
            return DistributedDataParallel(
                module, device_ids=[self.device.index], find_unused_parameters=find_unused_parameters
            )
        return DistributedDataParallel(module, find_unused_parameters=find_unused_parameters)

    @contextlib.contextmanager
    def rank_rng(self, step: int) -> Iterator[None]:
        """Randomness of this rank's own share (dropout, augmentation), drawn from a stream of its
        own; the shared stream is left where it was. A no-op in one process."""
        if not self.distributed:
            yield
            return
        devices = [self.device] if self.cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(hash((int(torch.initial_seed()), self.rank, step)) % 2**63)
            yield

    def mean(self, value: Tensor) -> Tensor:
        """The mean of a per-rank scalar over the ranks (a no-op in one process)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        value = value.detach().to(self.device, torch.float64).clone()
        dist.all_reduce(value)
        return value.cpu() / self.world

    def broadcast(self, value: float) -> float:
        """Rank 0's value on every rank (decisions such as the best validation step)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(t, 0)
        return float(t)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for the G and D forwards on GPU when `amp`; losses and vicinal weights stay fp32."""
        if self.amp and self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare(self, module: M) -> M:
        """The module on the device (channels_last on GPU for image nets)."""
        module = module.to(self.device)
        return channels_last(module) if self.cuda else module


def channels_last(module: M) -> M:
    """The module's 4-d (convolution) weights in channels_last memory format; others as they are."""
    return module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


LOCAL = Runtime()
_current = LOCAL


def current() -> Runtime:
    """The runtime `start` set up in this process (LOCAL until then)."""
    return _current


def is_main() -> bool:
    return _current.main


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise ParamsError(f"device {name!r}: expected one of {', '.join(DEVICES)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamsError("device 'cuda': no CUDA device is available (use device: auto or cpu)")
    return torch.device(name)


def start(device: str = "cpu", amp: bool = False) -> Runtime:
    """Set up this process: the device and, under torchrun (WORLD_SIZE > 1 in the environment), the
    process group. Call once per process, before building nets."""
    global _current
    dev = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if dev.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    _current = Runtime(device=dev, rank=rank, world=world, amp=amp)
    return _current


def stop() -> None:
    """Leave the process group (if any) and go back to LOCAL."""
    global _current
    if _current.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
    _current = LOCAL
