"""Sample grids: the tiling matches torchvision's make_grid, and save_grid writes the PNG it should."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.figures import save_grid, tile


@pytest.mark.parametrize("n, nrow, channels", [(2, 8, 1), (7, 3, 1), (12, 4, 3), (5, 5, 3)])
def test_tile_matches_torchvision_make_grid(n: int, nrow: int, channels: int) -> None:
    from torchvision.utils import make_grid

    x = torch.rand(n, channels, 5, 6, generator=torch.Generator().manual_seed(n))
    expected = make_grid(x, nrow=nrow, padding=1, pad_value=1.0)
    got = tile(x, nrow)
    assert torch.equal(got, expected[:channels])


def test_save_grid_writes_scaled_png(tmp_path: Path) -> None:
    x = torch.full((3, 1, 2, 2), -1.0)  # black images
    x[1] = 1.0  # one white image
    x[2, 0, 0, 0] = 0.0  # one grey pixel
    path = tmp_path / "grid.png"
    save_grid(x, path, nrow=2, scale=2)
    png = np.asarray(Image.open(path))
    # 2 rows x 2 columns of 2x2 images, framed by 1 white pixel: (2*3+1) x (2*3+1), then x2
    assert png.shape == (14, 14)
    assert png[0].tolist() == [255] * 14  # top frame
    assert (png[2:6, 2:6] == 0).all()  # image 0: black (x2 scaled)
    assert (png[2:6, 8:12] == 255).all()  # image 1: white
    assert (png[8:10, 2:4] == 128).all() and (png[8:12, 4:6] == 0).all()  # image 2: grey corner, rest black
    assert (png[8:12, 8:12] == 255).all()  # empty cell: frame colour
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind
