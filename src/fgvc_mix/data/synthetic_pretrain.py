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

``scene`` picks what an image shows: ``objects`` (above; the default) or
``objects_with_parts`` (opt-in): one large *plain* silhouette (one of
``SILHOUETTES``, random colour) carrying ONE small mark (a plain shape of ``SHAPES`` in a
contrasting colour, the birds' head-mark size in pixels) at a random point where it lies
wholly on the object; the class is the (silhouette, mark) pair, 24 classes. The background
holds the birds' clutter AND their part-like distractors (plain shapes and textured patches)
off the object, so only the mark ON the object tells the classes with the same silhouette
apart: ImageNet's objects-with-parts in clutter, still without birds (no ellipse body, no
head-mark + wing-patch pair, no textured part on an object).
It localises the birds' parts better before fine-tuning, but transfers worse to them
(docs/results/pretraining_variants_2026-12-01b.md), so ``objects`` stays the default.
``parts_radius`` sets its silhouettes' radius range (``None``: ``radius``).

``mixed`` (opt-in) holds both: even indices draw the ``objects`` scene at ``radius``, odd
ones the ``objects_with_parts`` scene at ``parts_radius``; the classes are the union
(objects 0-35, then objects-with-parts 36-59), each scene's classes balanced over its half.
It lands between the two on both counts (same record), so it is not the default either.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from fgvc_mix.data.synthetic import SPLITS, check_generated_split
from fgvc_mix.data.synthetic_drawing import _HEAD_RADIUS, SHAPES, TEXTURES, Canvas, _contrasting, distractor_reach
from fgvc_mix.errors import UserError

SCENES = ("objects", "objects_with_parts", "mixed")
MIXED_SCENES = ("objects", "objects_with_parts")  # the mixed scene's scene of index i: MIXED_SCENES[i % 2]
# Silhouettes of the parts scene: no circle (an ellipse, the birds' body) and no ring (a mark does not fit on its band).
SILHOUETTES = tuple(name for name in SHAPES if name not in ("circle", "ring"))
NUM_DISTRACTORS = 4  # part-like distractors off the object in the parts scene (the birds' default)
_MARK_TRIES = 32  # random points of the silhouette tried for a mark that lies wholly on it
RADIUS_RANGE = (0.10, 0.30)  # object radius as a fraction of the image side
TEXTURE_SCALE = (0.6, 1.4)  # texture period relative to the birds' at part_scale=1
OBJECT_CLASSES = tuple(f"{shape}/{texture}" for shape in SHAPES for texture in TEXTURES)
PART_CLASSES = tuple(f"{silhouette}/{mark}-mark" for silhouette in SILHOUETTES for mark in SHAPES)
SCENE_CLASSES = {"objects": OBJECT_CLASSES, "objects_with_parts": PART_CLASSES}
_IMAGE_STREAM = 2  # distinct from the birds' streams, so the same seed draws other images


class ObjectSample(NamedTuple):
    """One drawn image with its masks (the mark and distractor masks are empty in the ``objects`` scene)."""

    image: Tensor  # (3, H, W) float32 in [0, 1]
    label: int
    object_mask: Tensor  # (H, W) bool: the object (its mark included)
    mark_mask: Tensor  # (H, W) bool: the mark on the object
    distractor_mask: Tensor  # (H, W) bool: the part-like distractors off the object


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
        scene: str = "objects",
        parts_radius: tuple[float, float] | None = None,
    ) -> None:
        check_generated_split("SyntheticObjects", split, num_samples, image_size)
        if scene not in SCENES:
            raise UserError(f"SyntheticObjects: scene (data.scene) must be one of {SCENES}, got {scene!r}")
        parts_radius = parts_radius or radius
        for option, value in (("radius", radius), ("parts_radius", parts_radius)):
            if not 0 < value[0] <= value[1]:
                raise UserError(
                    f"SyntheticObjects: {option} (data.{option}) must be [low, high] with 0 < low <= high, got {value}"
                )
        self.num_samples = num_samples
        self.seed = seed
        self.noise = noise
        self.content_size = content_size or image_size
        self.scene = scene
        self._radius = {"objects": radius, "objects_with_parts": parts_radius}
        self._split_code = SPLITS.index(split)
        self._canvas = Canvas(image_size)
        # Balanced classes in a seeded order (in the mixed scene: each scene's over its half of the indices).
        order = np.random.default_rng([seed, self._split_code, _IMAGE_STREAM, num_samples])
        if scene != "mixed":
            self.classes = list(SCENE_CLASSES[scene])
            self.targets: list[int] = order.permutation(np.arange(num_samples) % len(self.classes)).tolist()
            return
        self.classes = [*OBJECT_CLASSES, *PART_CLASSES]
        targets = np.empty(num_samples, dtype=np.int64)
        for parity, offset, count in ((0, 0, len(OBJECT_CLASSES)), (1, len(OBJECT_CLASSES), len(PART_CLASSES))):
            slots = np.arange(parity, num_samples, 2)
            targets[slots] = offset + order.permutation(np.arange(len(slots)) % count)
        self.targets = targets.tolist()

    def scene_of(self, index: int) -> str:
        """The scene image ``index`` is drawn from (``objects`` or ``objects_with_parts``)."""
        return MIXED_SCENES[index % 2] if self.scene == "mixed" else self.scene

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        sample = self.render(index)
        return sample.image, sample.label

    def render(self, index: int) -> ObjectSample:
        """Image ``index`` of this split with its object, mark and distractor masks."""
        label = self.targets[index]
        scene = self.scene_of(index)
        rng = np.random.default_rng([self.seed, self._split_code, _IMAGE_STREAM, index])
        image = self._canvas.background(rng)
        if scene == "objects":
            region = self._textured_object(rng, image, label)
            mark = distractors = np.zeros_like(region)
        else:  # the parts scene's own class index (after the objects' in the mixed scene)
            local = label - len(OBJECT_CLASSES) if self.scene == "mixed" else label
            region, mark, distractors = self._object_with_mark(rng, image, local)
        if self.noise > 0:
            image += rng.normal(0.0, self.noise, size=image.shape)
        np.clip(image, 0.0, 1.0, out=image)
        masks = (torch.from_numpy(m) for m in (region, mark, distractors))
        return ObjectSample(torch.from_numpy(image.astype(np.float32)), label, *masks)

    def _place(self, rng: np.random.Generator, scene: str) -> tuple[float, float, float, float]:
        """Radius (``scene``'s range), centre (at most half the object cut by the border) and rotation of the object."""
        size = self._canvas.image_size
        radius = self.content_size * rng.uniform(*self._radius[scene])
        cx, cy = rng.uniform(0.5 * radius, size - 0.5 * radius, size=2)
        return radius, cx, cy, rng.uniform(0.0, 2.0 * math.pi)

    def _textured_object(self, rng: np.random.Generator, image: np.ndarray, label: int) -> np.ndarray:
        """The ``objects`` scene: a silhouette of ``SHAPES`` filled with a texture of ``TEXTURES``; its mask."""
        shape_id, texture_id = divmod(label, len(TEXTURES))
        radius, cx, cy, angle = self._place(rng, "objects")
        # `shape` draws a head mark of radius _HEAD_RADIUS * part_size; the texture's period is
        # independent of the object's size, around the birds' wing patches' (TEXTURE_SCALE).
        region = self._canvas.shape(rng, shape_id, cx, cy, angle, 0.0, 0.0, radius / _HEAD_RADIUS)
        texture_scale = self.content_size * rng.uniform(*TEXTURE_SCALE)
        self._canvas.paint_texture(
            rng, image, region, texture_id, _contrasting(rng, rng.random(3)), angle, texture_scale
        )
        return region

    def _object_with_mark(
        self, rng: np.random.Generator, image: np.ndarray, label: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``objects_with_parts`` scene: a plain silhouette, one mark on it, distractors off it; their masks."""
        canvas = self._canvas
        silhouette_id, mark_id = divmod(label, len(SHAPES))
        radius, cx, cy, angle = self._place(rng, "objects_with_parts")
        body = canvas.shape(
            rng, SHAPES.index(SILHOUETTES[silhouette_id]), cx, cy, angle, 0.0, 0.0, radius / _HEAD_RADIUS
        )
        colour = rng.random(3)
        image[:, body] = colour[:, None]
        part_size = self.content_size  # the birds' part_size at part_scale=1: their head mark's size in pixels
        mark = self._mark(rng, body, mark_id, part_size)
        image[:, mark] = _contrasting(rng, colour)[:, None]
        reach = distractor_reach(part_size)
        size = canvas.image_size
        candidates = rng.uniform(min(reach, size / 2), max(size - reach, size / 2), size=(64, 2))
        distractors = canvas.distractors(
            rng, image, candidates[_clear_of(body, candidates, reach + 1.0)][:NUM_DISTRACTORS], part_size
        )
        return body, mark, distractors

    def _mark(self, rng: np.random.Generator, body: np.ndarray, mark_id: int, part_size: float) -> np.ndarray:
        """A mark of ``SHAPES[mark_id]`` at a random point of ``body`` where it lies wholly on it
        (the first of ``_MARK_TRIES`` points that fits; else the last try, clipped to the body)."""
        ys, xs = np.nonzero(body)
        if len(xs) == 0:  # the object was drawn entirely outside the image: no mark either
            return body
        picks = rng.integers(len(xs), size=_MARK_TRIES)
        for pick in picks:
            mark = self._canvas.shape(
                rng, mark_id, xs[pick] + 0.5, ys[pick] + 0.5, rng.uniform(0.0, 2.0 * math.pi), 0.0, 0.0, part_size
            )
            if mark.any() and not (mark & ~body).any() and not _touches_border(mark):
                return mark
        return mark & body


def _touches_border(mask: np.ndarray) -> bool:
    """Whether ``mask`` reaches the image's edge (a shape there may be cut by it)."""
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def _clear_of(region: np.ndarray, points: np.ndarray, distance: float) -> np.ndarray:
    """(N,) bool: which of ``points`` ((N, 2) pixel x, y) are at least ``distance`` from every pixel of ``region``."""
    ys, xs = np.nonzero(region)
    if len(xs) == 0:
        return np.ones(len(points), dtype=bool)
    dx = points[:, :1] - (xs[None, :] + 0.5)
    dy = points[:, 1:] - (ys[None, :] + 0.5)
    return (dx * dx + dy * dy).min(axis=1) >= distance * distance
