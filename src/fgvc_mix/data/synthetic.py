"""Embedded synthetic fine-grained dataset: procedurally drawn "birds".

Fine-grained benchmarks (CUB-200, Stanford Cars, FGVC-Aircraft) are hard because every
class shares the same global appearance and classes differ only by small parts (a head
marking, a wing pattern, a grille). This dataset reproduces that structure so that the
toolkit trains and evaluates on a laptop CPU in minutes, with no download and no files,
and so that the discriminative pixels are known exactly (ground truth for measuring how
well mixing methods such as SnapMix assign labels to mixed images).

Every image shows one large "bird body" (an ellipse of random colour, size and position,
facing left or right with a random tilt of up to 30 degrees) on a cluttered, textured
random background. The class is defined only by
two small parts drawn on the body:

* a *head mark* near one end of the body, whose **shape** is one of ``SHAPES``;
* a *wing patch* in the middle of the body, whose **texture** is one of ``TEXTURES``.

Class ``k`` is a (shape, texture) pair; the two parts together cover a small share of
the image (docs/benchmarks.md gives it). Part colours are random per image, so colour
statistics carry no class information, and part-like distractors (shapes and textured
patches of the same families, in random colours) are scattered over the background, off
the body, so a model has to find the parts *on the object* rather than detect a shape
anywhere.

Images are generated lazily and deterministically from ``(seed, split, index)``: each
split draws from its own random streams, so train, val and test never share images,
and DataLoader workers need no shared state. Drawing costs milliseconds per image, more at
larger sizes (the paper-regime timings in docs/benchmarks.md count it); ``cache=True`` keeps
every drawn sample in a process-wide cache, for runs that revisit a small set many times (the
paper-regime benchmark: many epochs, many runs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors

from fgvc_mix.data.synthetic_drawing import (
    _HEAD_RADIUS,
    _WING_AXES,
    SHAPES,
    TEXTURES,
    Canvas,
    _contrasting,
    _random_angle,
    distractor_reach,
)
from fgvc_mix.errors import UserError

MAX_CLASSES: int = len(SHAPES) * len(TEXTURES)
SPLITS: tuple[str, ...] = ("train", "val", "test")
_LABEL_STREAM = 0
_IMAGE_STREAM = 1


class SyntheticSample(NamedTuple):
    """One rendered image with its ground-truth masks (all untransformed)."""

    image: Tensor  # (3, H, W) float32 in [0, 1]
    label: int
    part_mask: Tensor  # (H, W) bool: pixels of the class-defining head mark and wing patch
    distractor_mask: Tensor  # (H, W) bool: pixels of the part-like background distractors
    body_mask: Tensor  # (H, W) bool: pixels of the bird body (parts included)


_RENDERED: dict[tuple, SyntheticSample] = {}  # process-wide; filled only by datasets built with cache=True


def class_grid(num_classes: int) -> list[tuple[int, int]]:
    """(shape index, texture index) of each class, row-major over the smallest square-ish grid."""
    if not 2 <= num_classes <= MAX_CLASSES:
        raise UserError(
            f"SyntheticFGVC: dataset.num_classes={num_classes} is not supported; choose 2 <= num_classes <= "
            f"{MAX_CLASSES} ({len(SHAPES)} head-mark shapes x {len(TEXTURES)} wing-patch textures)"
        )
    num_shapes = math.ceil(math.sqrt(num_classes))
    num_textures = math.ceil(num_classes / num_shapes)
    pairs = [(s, t) for s in range(num_shapes) for t in range(num_textures)]
    return pairs[:num_classes]


def check_generated_split(
    dataset: str,
    split: str,
    num_samples: int,
    image_size: int,
    *,
    size_key: str = "num_samples",
    image_size_key: str = "image_size",
) -> None:
    """The options every generated dataset shares, refused with the dataset's name before anything is drawn.

    ``size_key`` and ``image_size_key`` are the config keys that set the two sizes, for the message
    to name what to change; ``split`` is the calling code's choice, not a setting.
    """
    if split not in SPLITS:
        raise ValueError(f"{dataset}: split={split!r} is not one of {SPLITS}")
    if num_samples < 1:
        raise UserError(f"{dataset}: {size_key}={num_samples}; set {size_key} to 1 or more")
    if image_size < 32:
        raise UserError(
            f"{dataset}: {image_size_key}={image_size} is too small to draw; set {image_size_key} to 32 or more"
        )


class SyntheticFGVC(Dataset):
    """Procedural fine-grained dataset; ``__getitem__`` returns ``(image, label)``.

    ``image`` is a float32 tensor (3, H, W) in [0, 1] with ``transform`` applied if given.
    Difficulty knobs: ``num_distractors`` part-like objects per image in the background,
    ``part_scale`` (relative size of the parts) and ``noise`` (std of additive pixel noise).
    ``cache`` keeps drawn samples in memory for the life of the process (~200 KB each at 128 px).
    """

    def __init__(
        self,
        split: str = "train",
        num_samples: int = 1600,
        num_classes: int = 16,
        image_size: int = 64,
        seed: int = 0,
        transform: Callable[[Tensor], Tensor] | None = None,
        num_distractors: int = 4,
        part_scale: float = 1.0,
        noise: float = 0.03,
        cache: bool = False,
    ) -> None:
        check_generated_split(
            "SyntheticFGVC",
            split,
            num_samples,
            image_size,
            size_key=f"dataset.options.{split}_size",
            image_size_key="dataset.image_size",
        )
        if seed < 0:
            raise UserError(f"SyntheticFGVC: dataset.options.seed={seed}; set it to 0 or more")
        if num_distractors < 0:
            raise UserError(f"SyntheticFGVC: dataset.options.num_distractors={num_distractors}; set it to 0 or more")
        if not 0.5 <= part_scale <= 1.25:
            raise UserError(f"SyntheticFGVC: dataset.options.part_scale={part_scale}; set it in [0.5, 1.25]")
        if noise < 0:
            raise UserError(f"SyntheticFGVC: dataset.options.noise={noise}; set it to 0 or more (pixel noise std)")
        self._grid = class_grid(num_classes)
        self.split = split
        self.num_samples = num_samples
        self.num_classes = num_classes
        self.image_size = image_size
        self.seed = seed
        self.transform = transform
        self.num_distractors = num_distractors
        self.part_scale = part_scale
        self.noise = noise
        self.cache = cache
        self.classes: list[str] = [f"{SHAPES[s]}-mark/{TEXTURES[t]}-wing" for s, t in self._grid]
        self._split_code = SPLITS.index(split)
        label_rng = np.random.default_rng([seed, self._split_code, _LABEL_STREAM])
        labels = np.arange(num_samples) % num_classes
        self.targets: list[int] = label_rng.permutation(labels).tolist()
        self._canvas = Canvas(image_size)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        sample = self.render(index)
        image = sample.image if self.transform is None else self.transform(sample.image)
        return image, sample.label

    def sample_with_mask(self, index: int) -> tuple[Tensor, int, Tensor]:
        """``(image, label, part_mask)``, untransformed; ``part_mask`` is (H, W) bool."""
        sample = self.render(index)
        return sample.image, sample.label, sample.part_mask

    def truth_kinds(self) -> tuple[str, ...]:
        """The truth protocol (:mod:`fgvc_mix.data.truth`): the drawn parts are the only truth."""
        return ("parts",)

    def check_truth(self, kind: str) -> None:
        if kind != "parts":
            raise UserError(f"SyntheticFGVC: truth={kind!r} is not available; the synthetic birds have truth=parts")

    def sample_with_truth(self, index: int, kind: str) -> tuple[Tensor, int, tv_tensors.Mask]:
        """``(image, label, units)``: one unit, the part mask (1, H, W), untransformed."""
        self.check_truth(kind)
        image, label, mask = self.sample_with_mask(index)
        return image, label, tv_tensors.Mask(mask[None])

    def render(self, index: int) -> SyntheticSample:
        """Image ``index`` of this split, with its part, distractor and body masks."""
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"SyntheticFGVC: index {index} out of range for {self.num_samples} samples")
        index %= self.num_samples
        if not self.cache:
            return self._draw(index)
        key = (self.seed, self.split, self.num_samples, self.num_classes, self.image_size)
        key += (self.num_distractors, self.part_scale, self.noise, index)
        if key not in _RENDERED:
            _RENDERED[key] = self._draw(index)
        return _RENDERED[key]

    def _draw(self, index: int) -> SyntheticSample:
        label = self.targets[index]
        shape_id, texture_id = self._grid[label]
        rng = np.random.default_rng([self.seed, self._split_code, _IMAGE_STREAM, index])
        size = self.image_size
        image = self._canvas.background(rng)

        # Body: ellipse with semi-axes (a, b), head direction `angle`, fully inside the image.
        a = size * rng.uniform(0.27, 0.36)
        b = size * rng.uniform(0.14, 0.19)
        angle = _random_angle(rng)
        cx, cy = rng.uniform(a + 1.0, size - a - 1.0, size=2)
        u, v = self._canvas.local(cx, cy, angle)
        radius2 = (u / a) ** 2 + (v / b) ** 2
        body = radius2 <= 1.0
        body_colour = rng.random(3)
        shading = 1.0 - 0.25 * radius2[body]
        image[:, body] = body_colour[:, None] * shading[None, :]

        # Distractors go off the body, so draw the parts' random numbers first: the parts of
        # an image do not change with `num_distractors`.
        part_size = size * self.part_scale
        head_u = a - 1.4 * _HEAD_RADIUS * part_size
        head_v = b * rng.uniform(-0.15, 0.15)
        head = self._canvas.shape(rng, shape_id, cx, cy, angle, head_u, head_v, part_size) & body
        head_colour = _contrasting(rng, body_colour)
        wing_u = head_u - part_size * (_HEAD_RADIUS + _WING_AXES[0] + rng.uniform(0.01, 0.04))
        wing_v = b * rng.uniform(-0.2, 0.2)
        wing = self._canvas.patch(cx, cy, angle, wing_u, wing_v, part_size) & body
        self._canvas.paint_texture(rng, image, wing, texture_id, body_colour, angle, part_size)
        image[:, head] = head_colour[:, None]

        distractors = self._distractors(rng, image, cx, cy, angle, a, b, part_size)
        if self.noise > 0:
            image += rng.normal(0.0, self.noise, size=image.shape)
        np.clip(image, 0.0, 1.0, out=image)
        return SyntheticSample(
            image=torch.from_numpy(image.astype(np.float32)),
            label=label,
            part_mask=torch.from_numpy(head | wing),
            distractor_mask=torch.from_numpy(distractors),
            body_mask=torch.from_numpy(body),
        )

    def _distractors(
        self,
        rng: np.random.Generator,
        image: np.ndarray,
        cx: float,
        cy: float,
        angle: float,
        a: float,
        b: float,
        part_size: float,
    ) -> np.ndarray:
        """Paint part-like shapes and textured patches off the body; return their mask."""
        size = self.image_size
        reach = distractor_reach(part_size)
        candidates = rng.uniform(reach, size - reach, size=(64, 2))
        dx, dy = candidates[:, 0] - cx, candidates[:, 1] - cy
        cu = dx * math.cos(angle) + dy * math.sin(angle)
        cv = -dx * math.sin(angle) + dy * math.cos(angle)
        # A point at normalised radius q is at least (q - 1) * b away from the ellipse.
        clear = np.sqrt((cu / a) ** 2 + (cv / b) ** 2) >= 1.0 + (reach + 1.0) / b
        return self._canvas.distractors(rng, image, candidates[clear][: self.num_distractors], part_size)
