"""The CAM-ready classifier: backbone -> feature map -> global average pool -> Linear.

SnapMix reads the class activation maps off the last feature map and the linear
head's weights, so every model here keeps that shape: ``forward_features`` gives
the (B, C, h, w) map and ``head`` is the ``nn.Linear`` applied to its spatial mean.
A vision transformer's map is its patch tokens on the patch grid; a class-token
model's head classifies the class token, as it was trained (models/transformers.py).
The optional mid-level branch (the paper's "Baseline+") adds a second classifier on
the penultimate stage; the prediction is the sum of both heads' logits. Inception-v3's
auxiliary classifier ("aux") is a training-only head: it adds 0.4x its mixed loss, as
in the authors' code, and never enters the prediction.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor, nn

from fgvc_mix.models.backbone import Backbone
from fgvc_mix.models.backbones import build_backbone


class MidLevelHead(nn.Module):
    """1x1 conv + ReLU on the penultimate feature map, global max pool, Linear.

    ``detach`` (the default, as in the paper) keeps its gradients out of the backbone.
    """

    def __init__(self, in_channels: int, hidden_channels: int, num_classes: int, detach: bool = True) -> None:
        super().__init__()
        self.detach = detach
        self.conv = nn.Sequential(nn.Conv2d(in_channels, hidden_channels, 1), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(hidden_channels, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        features = features.detach() if self.detach else features
        return self.classifier(self.conv(features).amax(dim=(2, 3)))


AUX_LOSS_WEIGHT = 0.4  # Inception-v3's auxiliary loss weight (Szegedy et al.; the SnapMix authors' code)


class FGVCClassifier(nn.Module):
    """A backbone producing a spatial feature map, a linear head on its average pool, optionally a mid-level head.

    A backbone with an auxiliary branch (``backbone.aux``) gets a linear ``aux_head`` on it.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        pretrained_backbone: bool,
        mid_level: MidLevelHead | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_channels, num_classes)
        self.mid_level = mid_level
        self.aux_head = nn.Linear(backbone.aux_channels, num_classes) if backbone.aux is not None else None
        self.pretrained_backbone = pretrained_backbone

    @property
    def head_names(self) -> tuple[str, ...]:
        """The heads whose logits sum to the prediction (never ``aux``)."""
        return ("main", "mid") if self.mid_level is not None else ("main",)

    def loss_weight(self, head: str) -> float:
        """Weight of a head's mixed loss in training: prediction heads count fully, ``aux`` 0.4x."""
        return AUX_LOSS_WEIGHT if head == "aux" else 1.0

    def forward_features(self, images: Tensor) -> Tensor:
        """The last feature map (the CAM forward needs nothing else)."""
        return self.backbone(images)

    def forward_heads(self, images: Tensor) -> dict[str, Tensor]:
        """Logits of every head, by name: ``main``, ``mid`` (mid-level branch), ``aux`` (training mode only)."""
        use_aux = self.aux_head is not None and self.training
        mid, pooled = self.backbone.forward_pooled(images, with_mid=self.mid_level is not None or use_aux)
        outputs = {"main": self.head(pooled)}
        if self.mid_level is not None:
            outputs["mid"] = self.mid_level(mid)
        if use_aux:
            outputs["aux"] = self.aux_head(self.backbone.aux(mid))
        return outputs

    def forward(self, images: Tensor) -> Tensor:
        """The prediction: the sum of the heads' logits."""
        outputs = self.forward_heads(images)
        return sum(outputs[head] for head in self.head_names)

    def parameter_groups(self) -> dict[str, Iterator[nn.Parameter]]:
        """Backbone vs. new layers, so a pretrained backbone can train at a smaller learning rate.

        Inception's auxiliary convolutions come pretrained and stay in ``backbone``; only
        its new linear layer is a head (the authors' ``get_params`` split).
        """
        new_modules = [m for m in (self.head, self.mid_level, self.aux_head) if m is not None]
        return {"backbone": self.backbone.parameters(), "head": (p for m in new_modules for p in m.parameters())}


def build_classifier(
    name: str,
    num_classes: int,
    pretrained: bool = False,
    weights_path: str | None = None,
    backbone_options: dict | None = None,
    source: str = "builtin",
    image_size: int | None = None,
    mid_level: bool = False,
    mid_level_channels: int | None = 1024,
    mid_level_detach: bool = True,
) -> FGVCClassifier:
    """Build ``name`` (see ``BACKBONES``) with a fresh ``num_classes``-way CAM-ready head.

    ``pretrained`` takes torchvision's ImageNet weights (downloaded once into the torch
    hub cache); ``weights_path`` loads a local torchvision state dict instead, for
    offline clusters. ``backbone_options`` go to the backbone's builder (e.g.
    ``small_cnn``'s ``width``, ``inception_v3``'s ``aux_logits``). ``source="timm"``
    takes ``name`` as a timm model name; ``image_size`` (conf/model/timm.yaml sets the
    dataset's) sizes a timm transformer's position embeddings. ``mid_level`` adds the
    paper's mid-level branch, ``mid_level_channels`` wide; ``None`` takes the width of the map it
    reads (``Backbone.mid_channels``), the authors' choice for ResNets.
    """
    backbone = build_backbone(name, pretrained, weights_path, source, image_size, **(backbone_options or {}))
    hidden_channels = backbone.mid_channels if mid_level_channels is None else mid_level_channels
    branch = MidLevelHead(backbone.mid_channels, hidden_channels, num_classes, mid_level_detach) if mid_level else None
    return FGVCClassifier(backbone, num_classes, pretrained or weights_path is not None, branch)
