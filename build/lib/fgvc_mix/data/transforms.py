"""Image pipelines of the SnapMix authors: square resize, random crop + flip for training, centre crop for test.

torchvision's ``transforms.v2`` accepts both PIL images (real datasets) and tensors
(the synthetic data), so one pipeline serves both.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _pipeline(resize_size: int, crop: v2.Transform, mean: Sequence[float], std: Sequence[float], train: bool):
    steps = [v2.ToImage(), v2.Resize((resize_size, resize_size), antialias=True), crop]
    if train:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


def train_transform(
    image_size: int, resize_size: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> v2.Compose:
    """Resize to ``resize_size`` square, random ``image_size`` crop, horizontal flip, normalise."""
    return _pipeline(resize_size, v2.RandomCrop(image_size), mean, std, train=True)


def eval_transform(
    image_size: int, resize_size: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> v2.Compose:
    """Resize to ``resize_size`` square, centre ``image_size`` crop, normalise."""
    return _pipeline(resize_size, v2.CenterCrop(image_size), mean, std, train=False)
