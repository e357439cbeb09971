"""Generic synthetic pretraining task: the paper-regime benchmark's stand-in for ImageNet.

The SnapMix paper fine-tunes ImageNet-pretrained backbones: from the first step their
CAMs point at object parts. On a CPU with no download, this task plays ImageNet's role
for the synthetic birds (``fgvc_mix.data.synthetic``): many coarse classes of whole
objects, at varied scales and positions, on clutter, and no bird anywhere.

Every image shows one object: a silhouette of one of ``SHAPES`` filled with one of
``TEXTURES`` in two random colours; the class is the (shape, texture) pair, 36 classes.
The object's radius is 10-30% of the image side (the birds' head marks are ~10%), the
texture's period 0.6-1.4x the birds' wing patches', the position and rotation uniform
(at most half of the object cut by the border). The background is the birds' clutter
(colour field, grating, plain blobs). Like ImageNet, which holds birds, the task teaches
the visual vocabulary the fine-grained parts are made of (shapes, textures) but never
the fine-grained classes: no bird bodies, no part layout, no head-mark/wing-patch pairing.

Images are drawn deterministically from ``(seed, split, index)``, each split from its
own random streams. ``radius`` sets the object radius range as a fraction of
``content_size`` (default: the image side), which also scales the texture period: with
``image_size=64, content_size=128`` objects and textures have the pixel sizes they have at
128 px in a 4x cheaper 64-px image (the fine-tuning parts' pixel scale, in less compute).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from fgvc_mix.data.synthetic import _HEAD_RADIUS, SHAPES, SPLITS, TEXTURES, Canvas, _contrasting, check_generated_split

NUM_CLASSES = len(SHAPES) * len(TEXTURES)
RADIUS_RANGE = (0.10, 0.30)  # object radius as a fraction of the image side
TEXTURE_SCALE = (0.6, 1.4)  # texture period relative to the birds' at part_scale=1
_IMAGE_STREAM = 2  # distinct from the birds' streams, so the same seed draws other images


class SyntheticObjects(Dataset):
    """``__getitem__`` returns ``(image, label)``: a float32 (3, H, W) image in [0, 1] and its class."""

    def __init__(
        self,
        split: str = "train",
        num_samples: int = 3600,
        image_size: int = 128,
        seed: int = 0,
        noise: float = 0.03,
        radius: tuple[float, float] = RADIUS_RANGE,
        content_size: int | None = None,
    ) -> None:
        check_generated_split("SyntheticObjects", split, num_samples, image_size)
        if not 0 < radius[0] <= radius[1]:
            raise ValueError(
                f"SyntheticObjects: radius (data.radius) must be [low, high] with 0 < low <= high, got {radius}"
            )
        self.num_samples = num_samples
        self.seed = seed
        self.noise = noise
        self.radius = radius
        self.content_size = content_size or image_size
        self.classes = [f"{shape}/{texture}" for shape in SHAPES for texture in TEXTURES]
        self._split_code = SPLITS.index(split)
        self._canvas = Canvas(image_size)
        # Balanced classes in a seeded order.
        order = np.random.default_rng([seed, self._split_code, _IMAGE_STREAM, num_samples])
        self.targets: list[int] = order.permutation(np.arange(num_samples) % NUM_CLASSES).tolist()

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        label = self.targets[index]
        shape_id, texture_id = divmod(label, len(TEXTURES))
        rng = np.random.default_rng([self.seed, self._split_code, _IMAGE_STREAM, index])
        canvas = self._canvas
        size = canvas.image_size
        image = canvas.background(rng)
        radius = self.content_size * rng.uniform(*self.radius)
        cx, cy = rng.uniform(0.5 * radius, size - 0.5 * radius, size=2)  # at most half cut by the border
        angle = rng.uniform(0.0, 2.0 * math.pi)
        # `shape` draws a head mark of radius _HEAD_RADIUS * part_size; the texture's period is
        # independent of the object's size, around the birds' wing patches' (TEXTURE_SCALE).
        region = canvas.shape(rng, shape_id, cx, cy, angle, 0.0, 0.0, radius / _HEAD_RADIUS)
        texture_scale = self.content_size * rng.uniform(*TEXTURE_SCALE)
        canvas.paint_texture(rng, image, region, texture_id, _contrasting(rng, rng.random(3)), angle, texture_scale)
        if self.noise > 0:
            image += rng.normal(0.0, self.noise, size=image.shape)
        np.clip(image, 0.0, 1.0, out=image)
        return torch.from_numpy(image.astype(np.float32)), label
