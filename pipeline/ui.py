"""Terminal output for stages: rich progress bars on a TTY, plain periodic lines otherwise.
Under torchrun only rank 0 prints."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pipeline.runtime import is_main
from pipeline.utils import Progress as ProgressFn

console = Console(stderr=True)


def info(message: str) -> None:
    if not is_main():
        return
    console.print(message, highlight=False, markup=False, soft_wrap=True)


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[ProgressFn]:
    """Yield a callback (done, metrics) that advances a bar, or logs every ~10% when not a TTY."""
    if not is_main():
        yield lambda done, metrics: None
        return
    if sys.stderr.isatty():
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(description, total=total, metrics="")

            def update(done: int, metrics: dict[str, float]) -> None:
                text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "step")
                bar.update(task, completed=done, metrics=text)

            yield update
        return

    start, next_report = time.monotonic(), 0.0

    def log(done: int, metrics: dict[str, float]) -> None:
        nonlocal next_report
        if done / total >= next_report or done == total:
            text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "step")
            print(
                f"{description}: {done}/{total} {text} ({time.monotonic() - start:.0f}s)", file=sys.stderr, flush=True
            )
            next_report = done / total + 0.1

    yield log
