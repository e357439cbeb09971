"""Mixup (Zhang et al., ICLR 2018, arXiv:1710.09412): a convex blend of two images and their labels."""

from __future__ import annotations

import torch
from torch import Tensor

from fgvc_mix.mixing.batch import MixedBatch
from fgvc_mix.mixing.boxes import random_partner, sample_beta, to_device


def mixup(
    images: Tensor,
    targets: Tensor,
    *,
    alpha: float = 1.0,
    per_sample: bool = False,
    generator: torch.Generator | None = None,
) -> MixedBatch:
    """``lam * x + (1 - lam) * x[partner]`` with ``lam ~ Beta(alpha, alpha)``, one per batch or per image."""
    batch_size = images.shape[0]
    lam = sample_beta(alpha, (batch_size if per_sample else 1,), generator).float()
    lam, partner = to_device([lam, random_partner(batch_size, generator)], images.device)
    lam = lam.expand(batch_size)

    weight = lam.to(images.dtype)[:, None, None, None]
    mixed = weight * images + (1.0 - weight) * images[partner]
    return MixedBatch(mixed, targets, targets[partner], lam, 1.0 - lam, partner)
