"""Ground truth for label noise: which pixels of an image carry its class, from the data's own annotations.

One small protocol serves the synthetic birds and the real datasets alike: a dataset with
truth has ``truth_kinds()`` and ``sample_with_truth(index, kind)``, which returns the
untransformed image, its label and a ``tv_tensors.Mask`` of shape (K, H, W), one channel per
*unit* of truth in the image's own pixel frame. The caller passes image and mask through
the dataset's transform together, so resize, crop and flip move the truth with the pixels,
then folds the units into one map with :func:`truth_map`. The kinds:

* ``parts`` (CUB, NABirds: ``parts/part_locs.txt``; the synthetic birds: their drawn
  parts). A real image's units are its *visible* keypoints (``visible=1``), each a disc of
  radius ``PART_RADIUS`` times the geometric mean side of the object box
  (``bounding_boxes.txt``), so a part weighs the same whatever the image's or the bird's
  size. :func:`truth_map` gives every unit still in the crop an equal share of the mass, so
  ``share`` = the fraction of the visible parts the mix shows (a disc cut by a box counts in
  proportion to its pixels shown). The synthetic image has one unit, its exact part pixels.
* ``box`` (every dataset with object boxes): one unit, the union of the image's object
  boxes; ``share`` = the fraction of the object's box area the mix shows.

Limits: a keypoint is a point, the disc a guess at the part's extent (a beak is smaller than
a wing); an occluded part (``visible=0``) counts for nothing; a box holds background too, so
box truth rewards any rule that follows the object, not the parts that decide the class.
Coordinates are taken as pixel indices as the files give them: 1-based files (Cars'
``bbox_*``) are off by at most one pixel. A unit that the crop leaves with no pixel drops
out; an image left with none is skipped by the meter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .image_list import Box, Point

TRUTH_KINDS = ("parts", "box")
PART_RADIUS = 0.1
"""A part disc's radius, as a fraction of the geometric mean side of the object box."""


def box_units(size: tuple[int, int], boxes: Sequence[Box], scale: float = 1.0) -> Tensor:
    """(1, H, W) bool: the union of ``boxes`` (scaled by ``scale``) on a ``size`` = (W, H) canvas.

    Pixel column ``c`` is inside a box ``(x, y, w, h)`` when ``x <= c < x + w`` (rows alike).
    """
    width, height = size
    cols, rows = torch.arange(width, dtype=torch.float64), torch.arange(height, dtype=torch.float64)
    union = torch.zeros(height, width, dtype=torch.bool)
    for x, y, w, h in boxes:
        x, y, w, h = (v * scale for v in (x, y, w, h))
        union |= ((rows >= y) & (rows < y + h))[:, None] & ((cols >= x) & (cols < x + w))[None, :]
    return union[None]


def part_radius(box: Box) -> float:
    """The disc radius of every part of an object in ``box``: ``PART_RADIUS`` x sqrt(w h)."""
    return PART_RADIUS * math.sqrt(max(box[2], 0.0) * max(box[3], 0.0))


def disc_units(size: tuple[int, int], points: Sequence[Point], radius: float, scale: float = 1.0) -> Tensor:
    """(K, H, W) bool: a disc of ``radius`` around each of the K ``points`` (all scaled by ``scale``).

    With no point, one empty channel: an image without visible parts has no truth.
    """
    width, height = size
    if not points:
        return torch.zeros(1, height, width, dtype=torch.bool)
    centres = torch.tensor(points, dtype=torch.float64) * scale
    cols, rows = torch.arange(width, dtype=torch.float64), torch.arange(height, dtype=torch.float64)
    dx = cols[None, None, :] - centres[:, 0, None, None]
    dy = rows[None, :, None] - centres[:, 1, None, None]
    return dx.square() + dy.square() <= (radius * scale) ** 2


def truth_map(units: Tensor) -> Tensor | None:
    """One (H, W) map from the (K, H, W) units: each non-empty unit gets an equal share of the mass.

    A single unit is returned as its bool pixels (the part mass divides by their count, as
    it always did for the synthetic masks); several give a float32 map summing to one.
    ``None`` when every unit is empty (the crop or the annotations left no truth).
    """
    units = torch.as_tensor(units).bool()
    counts = units.sum(dim=(1, 2))
    kept, kept_counts = units[counts > 0], counts[counts > 0]
    if len(kept) == 0:
        return None
    if len(kept) == 1:
        return kept[0]
    return (kept.float() / kept_counts[:, None, None].float()).sum(dim=0) / len(kept)
