"""CutMix (Yun et al., ICCV 2019, arXiv:1905.04899) as the SnapMix authors ran it.

The partner's pixels in a box replace the same box of the image; the labels are
weighted by area: ``lam_a = 1 - clipped box area / image area``, ``lam_b = 1 - lam_a``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fgvc_mix.mixing.batch import MixedBatch
from fgvc_mix.mixing.boxes import box_areas, box_masks, draw_boxes, paste, random_partner, to_device


def cutmix(
    images: Tensor,
    targets: Tensor,
    *,
    beta: float = 1.0,
    per_sample: bool = False,
    generator: torch.Generator | None = None,
    alpha: float | None = None,
) -> MixedBatch:
    """Mix a batch with CutMix; ``beta`` is the Beta(beta, beta) concentration of lambda (the box
    mixers' one name for it, as SnapMix's). ``alpha``, when given, replaces it: the name the
    design's mixing core API gives ``cutmix`` (CutMix's paper), kept for callers of that contract."""
    batch_size, _, height, width = images.shape
    host_boxes = draw_boxes(batch_size, height, width, beta if alpha is None else alpha, per_sample, generator)
    partner, boxes = to_device([random_partner(batch_size, generator), host_boxes], images.device)

    # Equal boxes need no resampling: copy the partner's pixels exactly, as timm and torchvision do.
    if per_sample:
        row_in, col_in = box_masks(boxes, height, width)
        mixed = torch.where((row_in[:, :, None] & col_in[:, None, :])[:, None], images[partner], images)
    else:  # one box on the host: a slice copy
        mixed = paste(images, partner, host_boxes, host_boxes)
    lam_b = (box_areas(boxes) / (height * width)).float()
    return MixedBatch(mixed, targets, targets[partner], 1.0 - lam_b, lam_b, partner, boxes, boxes)
