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

Class ``k`` is a (shape, texture) pair; the two parts together cover about 5% of the
image. Part colours are random per image, so colour statistics carry no class
information, and part-like distractors (shapes and textured patches of the same
families, in random colours) are scattered over the background, off the body, so a
model has to find the parts *on the object* rather than detect a shape anywhere.

Images are generated lazily and deterministically from ``(seed, split, index)``: each
split draws from its own random streams, so train, val and test never share images,
and DataLoader workers need no shared state. Drawing costs ~2 ms at 64 px and ~7 ms at
128 px; ``cache=True`` keeps every drawn sample in a process-wide cache, for runs that
revisit a small set many times (the paper-regime benchmark: many epochs, many runs).
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

from fgvc_mix.errors import UserError

SHAPES: tuple[str, ...] = ("circle", "cross", "ring", "bar", "triangle", "square")
TEXTURES: tuple[str, ...] = ("plain", "striped", "checkered", "dotted", "grid", "speckled")
MAX_CLASSES: int = len(SHAPES) * len(TEXTURES)
SPLITS: tuple[str, ...] = ("train", "val", "test")

_LABEL_STREAM = 0
_IMAGE_STREAM = 1
_CONTROL_POINTS = 5  # control points per side of the low-frequency background colour field
_NUM_CLUTTER = 8  # plain blobs in the background (not part-like)
_MIN_CONTRAST = 0.4  # minimum RGB distance between a part colour and what it is drawn on
# Sizes as fractions of `image_size * part_scale`; angles in radians.
_HEAD_RADIUS = 0.095
_WING_AXES = (0.12, 0.075)
_TEXTURE_PERIOD = 0.065
_BODY_TILT = math.radians(30)  # bodies face left or right, tilted by at most this
_PART_TILT = math.radians(15)  # parts follow the body axis up to this jitter


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


class Canvas:
    """Drawing primitives on a square ``size`` x ``size`` image (float64 (3, H, W) arrays, in place).

    Shared by the fine-grained birds (``SyntheticFGVC``) and the generic pretraining objects
    (``fgvc_mix.data.synthetic_pretrain``), so both draw the same shapes, textures and clutter.
    """

    def __init__(self, size: int) -> None:
        self.image_size = size
        centres = np.arange(size, dtype=np.float64) + 0.5
        self._yy, self._xx = np.meshgrid(centres, centres, indexing="ij")
        # Linear interpolation matrix from control points to pixel centres (separable upsampling).
        knots = np.linspace(0.0, size, _CONTROL_POINTS)
        self._upsample = np.clip(1.0 - np.abs(centres[:, None] - knots[None, :]) / knots[1], 0.0, None)

    def local(self, cx: float, cy: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates in a frame centred on (cx, cy) whose u axis points along `angle`."""
        dx, dy = self._xx - cx, self._yy - cy
        cos, sin = math.cos(angle), math.sin(angle)
        return dx * cos + dy * sin, -dx * sin + dy * cos

    def background(self, rng: np.random.Generator) -> np.ndarray:
        """Low-frequency colour field + a colour grating + plain blobs (float64, (3, H, W))."""
        field = rng.random((3, _CONTROL_POINTS, _CONTROL_POINTS))
        image = np.einsum("hi,cij,wj->chw", self._upsample, field, self._upsample)
        freq = rng.uniform(2.0, 6.0) * 2.0 * math.pi / self.image_size
        phi, phase = rng.uniform(0.0, 2.0 * math.pi, size=2)
        grating = np.sin(freq * (self._xx * math.cos(phi) + self._yy * math.sin(phi)) + phase)
        image += 0.15 * rng.uniform(-1.0, 1.0, size=(3, 1, 1)) * grating
        size = self.image_size
        for _ in range(_NUM_CLUTTER):
            bx, by = rng.uniform(0.0, size, size=2)
            ba, bb = size * rng.uniform(0.03, 0.12, size=2)
            u, v = self.local(bx, by, rng.uniform(0.0, math.pi))
            blob = (u / ba) ** 2 + (v / bb) ** 2 <= 1.0
            image[:, blob] = rng.random((3, 1))
        return image

    def shape(
        self,
        rng: np.random.Generator,
        shape_id: int,
        cx: float,
        cy: float,
        angle: float,
        du: float,
        dv: float,
        part_size: float,
    ) -> np.ndarray:
        """Mask of a head-mark shape, roughly aligned with `angle`, centred at local offset (du, dv)."""
        radius = _HEAD_RADIUS * part_size * rng.uniform(0.9, 1.1)
        px = cx + du * math.cos(angle) - dv * math.sin(angle)
        py = cy + du * math.sin(angle) + dv * math.cos(angle)
        x, y = self.local(px, py, angle + rng.uniform(-_PART_TILT, _PART_TILT))
        return _shape_mask(SHAPES[shape_id], x / radius, y / radius)

    def patch(self, cx: float, cy: float, angle: float, du: float, dv: float, part_size: float) -> np.ndarray:
        """Mask of an elliptic wing patch aligned with `angle`, centred at local offset (du, dv)."""
        u, v = self.local(cx, cy, angle)
        semi_u, semi_v = _WING_AXES[0] * part_size, _WING_AXES[1] * part_size
        return ((u - du) / semi_u) ** 2 + ((v - dv) / semi_v) ** 2 <= 1.0

    def paint_texture(
        self,
        rng: np.random.Generator,
        image: np.ndarray,
        region: np.ndarray,
        texture_id: int,
        under_colour: np.ndarray,
        angle: float,
        part_size: float,
    ) -> None:
        """Fill `region` with a two-colour texture roughly aligned with `angle`, random phase;
        the foreground contrasts with `under_colour`."""
        fg = _contrasting(rng, under_colour)
        bg = _contrasting(rng, fg)
        period = _TEXTURE_PERIOD * part_size * rng.uniform(0.9, 1.1)
        origin = rng.uniform(0.0, self.image_size, size=2)
        x, y = self.local(*origin, angle + rng.uniform(-_PART_TILT, _PART_TILT))
        cells = rng.random((16, 16)) < 0.5
        on = _texture_mask(TEXTURES[texture_id], x[region] / period, y[region] / period, cells)
        image[:, region] = np.where(on[None, :], fg[:, None], bg[:, None])

    def distractors(
        self, rng: np.random.Generator, image: np.ndarray, centres: np.ndarray, part_size: float
    ) -> np.ndarray:
        """Paint a part-like distractor (a plain shape or a textured patch, random colours) at each of
        ``centres`` ((N, 2) pixel coordinates, chosen by the caller off its object); return their mask."""
        mask = np.zeros((self.image_size, self.image_size), dtype=bool)
        for px, py in centres:
            tilt = _random_angle(rng)
            if rng.random() < 0.5:
                region = self.shape(rng, rng.integers(len(SHAPES)), px, py, tilt, 0.0, 0.0, part_size)
                image[:, region] = rng.random((3, 1))
            else:
                region = self.patch(px, py, tilt, 0.0, 0.0, part_size)
                texture = rng.integers(len(TEXTURES))
                self.paint_texture(rng, image, region, texture, rng.random(3), tilt, part_size)
            mask |= region
        return mask


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


def distractor_reach(part_size: float) -> float:
    """Bounding radius in pixels of a distractor drawn at ``part_size``: how far from an object its centre stays."""
    return max(_WING_AXES[0], 1.2 * _HEAD_RADIUS) * part_size


def _random_angle(rng: np.random.Generator) -> float:
    """Facing right or left (equally likely), tilted by at most `_BODY_TILT`."""
    return rng.uniform(-_BODY_TILT, _BODY_TILT) + math.pi * rng.integers(2)


def _contrasting(rng: np.random.Generator, reference: np.ndarray) -> np.ndarray:
    """A random RGB colour at least `_MIN_CONTRAST` away from `reference` (farthest of 32 draws otherwise)."""
    candidates = rng.random((32, 3))
    distance = np.linalg.norm(candidates - reference, axis=1)
    ok = np.flatnonzero(distance >= _MIN_CONTRAST)
    return candidates[ok[0] if ok.size else int(distance.argmax())]


def _shape_mask(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mask of a unit-radius shape in normalised coordinates."""
    r2 = x * x + y * y
    if name == "circle":
        return r2 <= 1.0
    if name == "square":
        return np.maximum(np.abs(x), np.abs(y)) <= 0.8
    if name == "triangle":  # equilateral, inradius 0.6
        inside = np.ones_like(x, dtype=bool)
        for k in range(3):
            normal = math.pi / 2 + 2 * math.pi * k / 3
            inside &= x * math.cos(normal) + y * math.sin(normal) <= 0.6
        return inside
    if name == "cross":
        ax, ay = np.abs(x), np.abs(y)
        return ((ax <= 0.3) & (ay <= 1.0)) | ((ay <= 0.3) & (ax <= 1.0))
    if name == "ring":
        return (r2 <= 1.0) & (r2 >= 0.55**2)
    if name == "bar":
        return (np.abs(x) <= 1.1) & (np.abs(y) <= 0.35)
    raise KeyError(name)


def _texture_mask(name: str, x: np.ndarray, y: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Foreground pixels of a texture with period 1 in normalised coordinates."""
    if name == "plain":
        return np.ones_like(x, dtype=bool)
    if name == "striped":
        return np.mod(x, 1.0) < 0.5
    if name == "checkered":
        return (np.floor(x) + np.floor(y)) % 2 == 0
    if name == "dotted":
        return (np.mod(x, 1.0) - 0.5) ** 2 + (np.mod(y, 1.0) - 0.5) ** 2 <= 0.3**2
    if name == "grid":
        return (np.mod(x, 1.0) < 0.3) | (np.mod(y, 1.0) < 0.3)
    if name == "speckled":
        n = cells.shape[0]
        return cells[np.floor(2 * y).astype(np.int64) % n, np.floor(2 * x).astype(np.int64) % n]
    raise KeyError(name)
