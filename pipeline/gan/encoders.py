"""KD-DLGAN's frozen encoders: images (as the data set stores them, in [-1, 1]) -> features (N, d).

- classifier: a cgankd classifier checkpoint (the experiment's own teacher, or another run's);
  the features are its penultimate layer.
- torchscript: a TorchScript module mapping images to (N, d) features.
- open_clip: a local open_clip checkpoint (the optional open_clip_torch package); its image tower
  gives the features and its text tower the class prototypes ("a photo of a <class name>").
The encoder's weights never change (no gradient, eval mode). Nothing is downloaded: a missing file
or package is a one-line error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import CheckpointError, ParamsError

Tensor = torch.Tensor

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip's image normalisation
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class FrozenEncoder(nn.Module):
    """features(prepare(x)) with every weight frozen. `size` resizes the images (and grey ones
    become 3-channel) for encoders that expect one input size; `mean`/`std` then normalise the
    [0, 1] images (open_clip)."""

    def __init__(
        self,
        features: Any,
        module: nn.Module,
        size: int | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        self.module, self._features, self.size = module, features, size
        self.mean = None if mean is None else torch.tensor(mean).view(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(std).view(1, -1, 1, 1)
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenEncoder:  # stays in eval mode
        return self

    def forward(self, x: Tensor) -> Tensor:
        if self.size is not None:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
        if self.mean is not None and self.std is not None:
            x = ((x + 1) / 2 - self.mean.to(x.device)) / self.std.to(x.device)
        return self._features(x)


def encoder_file(kd, own: Path | None) -> Path:
    """The file kd_dlgan's encoder is read from: `own` (the experiment's own teacher) for
    encoder 'teacher', else the path given."""
    if kd.encoder == "teacher":
        if own is None:
            raise ParamsError("kd_dlgan.encoder 'teacher': this experiment has no teacher to distil")
        return own
    path = Path(kd.encoder).expanduser()
    if not path.is_file():
        raise ParamsError(f"kd_dlgan.encoder: {path}: encoder file not found")
    return path


def load_encoder(kd, path: Path, channels: int, class_names: tuple[str, ...]) -> tuple[FrozenEncoder, Tensor | None]:
    """The frozen encoder of kd_dlgan params `kd` read from `path`, for images with `channels`
    channels, and its text prototypes (open_clip, one per class name) or None."""
    if kd.format == "classifier":
        from pipeline.artifacts import classifier_arch, load_classifier

        try:
            arch = classifier_arch(path)
        except CheckpointError as err:
            raise ParamsError(f"kd_dlgan.encoder: {err}") from None
        if arch.get("in_channels") != channels:
            raise ParamsError(
                f"kd_dlgan.encoder: {path} takes {arch.get('in_channels')}-channel images, the data have {channels}"
            )
        net = load_classifier(path)
        return FrozenEncoder(net.features, net), None
    if kd.format == "torchscript":
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError) as err:
            raise ParamsError(
                f"kd_dlgan.encoder: {path}: not a TorchScript file ({str(err).splitlines()[0]})"
            ) from None
        return FrozenEncoder(module, module, kd.image_size), None
    try:
        import open_clip
    except ImportError:
        raise ParamsError(
            "kd_dlgan.format open_clip needs the open_clip_torch package, which is not installed "
            "(uv pip install open_clip_torch)"
        ) from None
    model, _, _ = open_clip.create_model_and_transforms(kd.open_clip_model, pretrained=str(path))
    size = kd.image_size or model.visual.image_size
    size = size[0] if isinstance(size, tuple | list) else size
    enc = FrozenEncoder(model.encode_image, model, int(size), CLIP_MEAN, CLIP_STD)
    tokens = open_clip.get_tokenizer(kd.open_clip_model)([f"a photo of a {name}" for name in class_names])
    with torch.no_grad():
        text = model.encode_text(tokens).float()
    return enc, text


@torch.no_grad()
def encoder_dim(encoder: nn.Module, image_shape: tuple[int, ...]) -> int:
    """d, the width of the encoder's features, from one probe image; a one-line error when the
    output is not (N, d)."""
    out = encoder(torch.zeros(2, *image_shape))
    if out.ndim != 2:
        raise ParamsError(f"kd_dlgan.encoder: the encoder returns shape {tuple(out.shape)}, not (N, d) features")
    return int(out.shape[1])
