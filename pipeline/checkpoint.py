"""Checkpoints: plain state dicts, written atomically, loaded with weights_only=True.

A checkpoint file holds {"payload": ..., "sha256": hex}. The digest covers every tensor's bytes
and every plain value in the payload, so a truncated, tampered or foreign file is a clear
`CheckpointError` instead of silently wrong weights.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import torch

from pipeline.errors import CheckpointError
from pipeline.utils import save_torch

FORMAT = "cgankd-checkpoint-v1"


def _digest(obj: Any) -> str:
    h = hashlib.sha256()

    def walk(o: Any) -> None:
        if isinstance(o, torch.Tensor):
            t = o.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(o, dict):
            h.update(b"D%d" % len(o))
            for k in sorted(o, key=repr):
                h.update(repr(k).encode())
                walk(o[k])
        elif isinstance(o, (list, tuple)):
            h.update(b"L%d" % len(o))
            for v in o:
                walk(v)
        else:
            h.update(repr(o).encode())

    walk(obj)
    return h.hexdigest()


def save_checkpoint(payload: dict[str, Any], path: Path | str) -> None:
    """Save a dict of state dicts, tensors and plain values atomically with its digest."""
    blob = {"format": FORMAT, "payload": payload, "sha256": _digest(payload)}
    save_torch(blob, Path(path))


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load and verify a checkpoint written by save_checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused a global: loading it would run code
        raise CheckpointError(f"{path}: refused: not a plain-tensor checkpoint (it would run code to load)") from None
    except Exception as err:  # truncated zip, ...
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: unreadable checkpoint ({reason})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or "payload" not in blob:
        raise CheckpointError(f"{path}: not a cgankd checkpoint")
    if _digest(blob["payload"]) != blob.get("sha256"):
        raise CheckpointError(f"{path}: checksum mismatch, the checkpoint was modified or corrupted")
    return blob["payload"]
