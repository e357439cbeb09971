"""Image pipelines of the SnapMix authors (``datasets/tfs.py``): resize, random crop + flip for training, centre crop
for test.

The resize has two modes, as in the authors' code: ``square`` warps the image to
``resize_size`` x ``resize_size`` (their ``warp=True``: Cars, Aircraft) and ``shorter``
scales the shorter side to ``resize_size`` keeping the aspect ratio (their ``warp=False``,
set for CUB and NABirds in ``utils/conf.py``). torchvision's ``transforms.v2`` accepts both
PIL images (real datasets) and tensors (the synthetic data), so one pipeline serves both.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

from fgvc_mix.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("shorter", "square")


def check_resize_mode(resize: str) -> None:
    """Refuse an unknown ``dataset.resize`` before any image is read."""
    if resize not in RESIZE_MODES:
        raise UserError(
            f"dataset.resize={resize!r} is not known; choose 'shorter' (shorter side to resize_size, aspect kept) "
            "or 'square' (warp to resize_size x resize_size)"
        )


def resize_transform(resize_size: int, resize: str = "square") -> v2.Resize:
    """The resize step: ``square`` to (resize_size, resize_size), ``shorter`` side to resize_size.

    For ``shorter`` the longer side is ``int(resize_size * long / short)``, torchvision's
    rounding then and now (a 500x375 image becomes 682x512).
    """
    check_resize_mode(resize)
    return v2.Resize(resize_size if resize == "shorter" else (resize_size, resize_size), antialias=True)


def _pipeline(
    resize_size: int, resize: str, crop: v2.Transform, mean: Sequence[float], std: Sequence[float], train: bool
) -> v2.Compose:
    steps = [v2.ToImage(), resize_transform(resize_size, resize), crop]
    if train:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


def train_transform(
    image_size: int,
    resize_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    resize: str = "square",
) -> v2.Compose:
    """Resize (``resize`` mode), random ``image_size`` square crop, horizontal flip, normalise."""
    return _pipeline(resize_size, resize, v2.RandomCrop(image_size), mean, std, train=True)


def eval_transform(
    image_size: int,
    resize_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    resize: str = "square",
) -> v2.Compose:
    """Resize (``resize`` mode), centre ``image_size`` square crop, normalise."""
    return _pipeline(resize_size, resize, v2.CenterCrop(image_size), mean, std, train=False)
