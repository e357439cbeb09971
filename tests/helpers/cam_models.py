"""A stand-in model for the CAM-guided mixers' unit tests: CAMs chosen by the test, no network to train."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


class MapModel(nn.Module):
    """``forward_features`` is one channel, ``feature(images)`` (B, H, W), and the head weighs it 1 for every
    class, so the CAM forward (``CamForward``) returns that map shifted to a minimum of 0 and normalised.

    ``calls`` counts the CAM forwards. The default map is constant: uniform CAMs.
    """

    def __init__(self, feature: Callable[[Tensor], Tensor] | None = None, num_classes: int = 8) -> None:
        super().__init__()
        self.feature = feature or (lambda images: torch.ones_like(images[:, 0]))
        self.head = nn.Linear(1, num_classes)
        nn.init.ones_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.calls = 0

    def forward_features(self, images: Tensor) -> Tensor:
        self.calls += 1
        return self.feature(images)[:, None]
