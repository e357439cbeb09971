"""Backbones split before their last stage, so they give both the last and the penultimate feature map.

SnapMix reads CAMs off the last map; the paper's mid-level branch ("Baseline+")
classifies from the penultimate one (layer3 of a ResNet).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn


class Backbone(nn.Module):
    """``body`` (up to the stage before last) then ``last_stage``; ``forward`` gives the last feature map."""

    def __init__(self, body: nn.Module, last_stage: nn.Module, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = body
        self.last_stage = last_stage
        self.mid_channels = mid_channels
        self.out_channels = out_channels

    def forward(self, images: Tensor) -> Tensor:
        return self.last_stage(self.body(images))

    def forward_stages(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(penultimate, last) feature maps."""
        mid = self.body(images)
        return mid, self.last_stage(mid)


def small_cnn(pretrained: bool = False, weights_path: str | None = None, width: int = 32) -> Backbone:
    """Four stages of two conv-BN-ReLU (``width`` x 1, 2, 4, 8 channels), three 2x poolings: an 8x8 map at 64 px.

    For the synthetic demo on a CPU: a ResNet's 32x downsampling leaves a 2x2 map at 64 px,
    too coarse for CAMs to locate small parts.
    """
    if pretrained or weights_path:
        raise ValueError("model=small_cnn has no pretrained weights; set model.pretrained=false, weights_path=null")
    stages: list[nn.Module] = []
    in_channels = 3
    for stage in range(4):
        channels = width * 2**stage
        layers: list[nn.Module] = [nn.MaxPool2d(2)] if stage > 0 else []
        for _ in range(2):
            layers += [nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)]
            layers += [nn.BatchNorm2d(channels), nn.ReLU(True)]
            in_channels = channels
        stages.append(nn.Sequential(*layers))
    return Backbone(nn.Sequential(*stages[:3]), stages[3], mid_channels=width * 4, out_channels=width * 8)


def load_torchvision_weights(model: nn.Module, weights_path: str, name: str, classifier_prefix: str) -> None:
    """Load a local torchvision state dict (for offline clusters); only the ImageNet classifier may be absent."""
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.weights_path={path} does not exist: point it at a saved state dict of torchvision's {name}, "
            "or set model.weights_path=null"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, _ = model.load_state_dict(state, strict=False)
    missing = [key for key in missing if not key.startswith(classifier_prefix)]
    if missing:
        raise ValueError(f"model.weights_path={path} is not a torchvision {name} state dict: missing {missing[:5]}")


def _torchvision_model(name: str, pretrained: bool, weights_path: str | None, classifier_prefix: str) -> nn.Module:
    model = getattr(torchvision.models, name)(weights="DEFAULT" if pretrained and not weights_path else None)
    if weights_path:
        load_torchvision_weights(model, weights_path, name, classifier_prefix)
    return model


def resnet(name: str) -> Callable[..., Backbone]:
    def build(pretrained: bool = False, weights_path: str | None = None) -> Backbone:
        net = _torchvision_model(name, pretrained, weights_path, "fc.")
        body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3)
        return Backbone(body, net.layer4, net.layer4[0].conv1.in_channels, net.fc.in_features)

    return build


BACKBONES: dict[str, Callable[..., Backbone]] = {
    "small_cnn": small_cnn,
    **{name: resnet(name) for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")},
}


def build_backbone(name: str, pretrained: bool = False, weights_path: str | None = None, **options) -> Backbone:
    """The backbone ``name``; ``options`` go to its builder (e.g. ``small_cnn``'s ``width``)."""
    if name not in BACKBONES:
        raise ValueError(f"model.name={name!r} is not a known backbone; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name](pretrained=pretrained, weights_path=weights_path, **options)
