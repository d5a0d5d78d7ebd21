"""Pictures the stages write: sample grids, kept-vs-dropped grids and line plots, as PNG files
written atomically (matplotlib imported only when a plot is drawn)."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.utils import atomic_write


def tile(images: torch.Tensor, nrow: int, pad: int = 1, value: float = 1.0) -> torch.Tensor:
    """(N, C, H, W) -> (C, H', W'): nrow images per row, each framed by `pad` pixels of `value`
    (the layout of torchvision's make_grid, without importing torchvision: that takes seconds)."""
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    cells = torch.full((rows * cols, c, h + pad, w + pad), value, dtype=images.dtype)
    cells[:n, :, pad:, pad:] = images
    grid = (
        cells.view(rows, cols, c, h + pad, w + pad)
        .permute(2, 0, 3, 1, 4)
        .reshape(c, rows * (h + pad), cols * (w + pad))
    )
    return torch.nn.functional.pad(grid, (0, pad, 0, pad), value=value)


def save_grid(images: torch.Tensor, path: Path, nrow: int, scale: int = 4) -> None:
    """Save images in [-1, 1] as a PNG grid (nrow images per row), upscaled for visibility."""
    from PIL import Image

    grid = tile((images.detach().float().cpu().clamp(-1, 1) + 1) / 2, nrow)
    if scale > 1:
        grid = grid.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    pixels = (grid * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    atomic_write(path, lambda tmp: image.save(tmp, format="png"))


def save_split_grid(rows: list[tuple[torch.Tensor, torch.Tensor]], path: Path, n: int = 8) -> None:
    """One row per (left, right) pair of image batches: n left images | a white gap | n right ones,
    padded with black (e.g. kept vs dropped fakes of one label)."""
    shape = next(t.shape[1:] for pair in rows for t in pair if len(t)) if any(len(t) for p in rows for t in p) else None
    if shape is None:
        return
    pad = lambda t: torch.cat([t[:n], torch.full((n - len(t[:n]), *shape), -1.0)])  # noqa: E731
    cells = [torch.cat([pad(left), torch.ones(1, *shape), pad(right)]) for left, right in rows]
    save_grid(torch.cat(cells), path, nrow=2 * n + 1)


def save_curves(
    curves: dict[str, tuple[list[float], list[float]]], path: Path, title: str, xlabel: str = "step"
) -> None:
    """A PNG line plot, one line per entry: label -> (xs, ys)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=label)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path: Path, **savefig) -> None:
    """Write a matplotlib figure as a PNG (100 dpi) atomically, then close it."""
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, **savefig))
    plt.close(fig)
