"""The result of mixing a batch, and the loss that consumes it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class MixedBatch:
    """Mixed images with two targets per image and one weight per target.

    The weights need not sum to one: SnapMix's CAM-based weights do not, which is
    the point of the method. ``partner``, ``box_a``, ``box_b`` and ``mask`` say how the
    batch was mixed (``None`` where they do not apply); they feed dashboards and the
    label-noise meter, not the loss.

    ``mask`` is where image i shows its partner, per pixel: its share of the partner
    (bool, or float in [0, 1]). With ``box_b`` ``None`` the partner's pixels come from the
    same place (FMix, Attentive CutMix); with ``box_b`` set they are ``box_b`` resized into
    the mask's box (ResizeMix). Box mixers that keep only boxes leave it ``None``.
    """

    images: Tensor  # (B, C, H, W)
    targets_a: Tensor  # (B,) int64, each image's own label
    targets_b: Tensor  # (B,) int64, the partner's label
    lam_a: Tensor  # (B,) float32, weight of targets_a
    lam_b: Tensor  # (B,) float32, weight of targets_b
    partner: Tensor | None = None  # (B,) int64 index of each image's partner
    box_a: Tensor | None = None  # (B, 4) int64 [x1, y1, x2, y2) region of image i replaced
    box_b: Tensor | None = None  # (B, 4) int64 region of the partner pasted into box_a
    mask: Tensor | None = None  # (B, H, W) bool or float: each pixel's share of the partner


def no_mix(images: Tensor, targets: Tensor) -> MixedBatch:
    """The identity mix: each image keeps its own label with weight one."""
    ones = torch.ones(targets.shape[0], dtype=torch.float32, device=targets.device)
    return MixedBatch(images, targets, targets, ones, torch.zeros_like(ones))


def mixed_cross_entropy(logits: Tensor, batch: MixedBatch, label_smoothing: float = 0.0) -> Tensor:
    """Mean over the batch of ``lam_a * CE(logits, targets_a) + lam_b * CE(logits, targets_b)``.

    One log-softmax serves both targets; it is taken in float32 so that bf16/fp16
    logits under autocast do not lose the small weights SnapMix produces.
    """
    log_probs = logits.float().log_softmax(dim=-1)

    def cross_entropy(targets: Tensor) -> Tensor:
        nll = -log_probs.gather(1, targets[:, None]).squeeze(1)
        if label_smoothing == 0.0:
            return nll
        return (1.0 - label_smoothing) * nll - label_smoothing * log_probs.mean(dim=-1)

    return (batch.lam_a * cross_entropy(batch.targets_a) + batch.lam_b * cross_entropy(batch.targets_b)).mean()
