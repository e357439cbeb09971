"""The CAM-ready classifier: backbone -> feature map -> global average pool -> Linear.

SnapMix reads the class activation maps off the last feature map and the linear
head's weights, so every model here keeps that shape: ``forward_features`` gives
the (B, C, h, w) map and ``head`` is the ``nn.Linear`` applied to its spatial mean.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from fgvc_mix.models.backbones import BACKBONES, build_backbone


class FGVCClassifier(nn.Module):
    """A backbone producing a spatial feature map and a linear head on its average pool."""

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, pretrained_backbone: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)
        self.pretrained_backbone = pretrained_backbone

    def forward_features(self, images: Tensor) -> Tensor:
        return self.backbone(images)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.forward_features(images).mean(dim=(2, 3)))

    def parameter_groups(self) -> dict[str, Iterator[nn.Parameter]]:
        """Backbone vs. new layers, so a pretrained backbone can train at a smaller learning rate."""
        return {"backbone": self.backbone.parameters(), "head": self.head.parameters()}


def build_classifier(
    name: str, num_classes: int, pretrained: bool = False, weights_path: str | None = None
) -> FGVCClassifier:
    """Build ``name`` (see ``BACKBONES``) with a fresh ``num_classes``-way CAM-ready head.

    ``pretrained`` takes torchvision's ImageNet weights (downloaded once into the torch
    hub cache); ``weights_path`` loads a local state dict instead, for offline clusters.
    """
    if name not in BACKBONES:
        raise ValueError(f"model.name={name!r} is not a known backbone; choose one of {sorted(BACKBONES)}")
    if weights_path is not None and not Path(weights_path).is_file():
        raise FileNotFoundError(
            f"model.weights_path={weights_path} does not exist: point it at a saved state dict of the "
            f"torchvision {name} model, or set model.weights_path=null"
        )
    backbone, feature_dim = build_backbone(name, pretrained=pretrained and weights_path is None)
    if weights_path is not None:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        # The ImageNet classifier (fc.*) is replaced by our head; every backbone weight must load.
        missing, _ = backbone.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
        if missing:
            raise ValueError(f"model.weights_path={weights_path} is not a {name} state dict: missing {missing[:5]}")
    pretrained_backbone = pretrained or weights_path is not None
    return FGVCClassifier(backbone, feature_dim, num_classes, pretrained_backbone=pretrained_backbone)
