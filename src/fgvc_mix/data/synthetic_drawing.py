"""Drawing primitives of the synthetic data: shapes, textures, backgrounds, clutter, and their constants.

Shared by the fine-grained birds (``synthetic.SyntheticFGVC``) and the generic pretraining objects
(``synthetic_pretrain``), so both draw the same shapes, textures and clutter. Pure numpy: every
random draw comes from the caller's ``numpy.random.Generator``.
"""

from __future__ import annotations

import math

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "cross", "ring", "bar", "triangle", "square")
TEXTURES: tuple[str, ...] = ("plain", "striped", "checkered", "dotted", "grid", "speckled")
_CONTROL_POINTS = 5  # control points per side of the low-frequency background colour field
_NUM_CLUTTER = 8  # plain blobs in the background (not part-like)
_MIN_CONTRAST = 0.4  # minimum RGB distance between a part colour and what it is drawn on
# Sizes as fractions of `image_size * part_scale`; angles in radians.
_HEAD_RADIUS = 0.095
_WING_AXES = (0.12, 0.075)
_TEXTURE_PERIOD = 0.065
_BODY_TILT = math.radians(30)  # bodies face left or right, tilted by at most this
_PART_TILT = math.radians(15)  # parts follow the body axis up to this jitter


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
