"""Backbones truncated before their pooling layer, so they return the last feature map."""

from __future__ import annotations

from collections.abc import Callable

import torchvision
from torch import nn


def small_cnn(pretrained: bool = False) -> tuple[nn.Module, int]:
    """Four conv-BN-ReLU stages (32-64-128-256 channels), three 2x poolings: an 8x8 map at 64 px.

    For the synthetic demo on a CPU: a ResNet's 32x downsampling leaves a 2x2 map at 64 px,
    too coarse for CAMs to locate small parts.
    """
    if pretrained:
        raise ValueError("model=small_cnn has no pretrained weights; set model.pretrained=false")
    layers: list[nn.Module] = []
    in_channels = 3
    for stage, width in enumerate((32, 64, 128, 256)):
        for _ in range(2):
            layers += [nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]
            in_channels = width
        if stage < 3:
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers), in_channels


def _torchvision_resnet(name: str) -> Callable[[bool], tuple[nn.Module, int]]:
    def build(pretrained: bool = False) -> tuple[nn.Module, int]:
        weights = "DEFAULT" if pretrained else None
        resnet = getattr(torchvision.models, name)(weights=weights)
        feature_dim = resnet.fc.in_features
        # Keep the module names of torchvision (conv1, layer1, ...) so its state dicts load.
        resnet.avgpool = nn.Identity()
        resnet.fc = nn.Identity()
        return _ResNetTrunk(resnet), feature_dim

    return build


class _ResNetTrunk(nn.Module):
    """A torchvision ResNet up to ``layer4``; its state dict keys match torchvision's."""

    def __init__(self, resnet: torchvision.models.ResNet) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


BACKBONES: dict[str, Callable[[bool], tuple[nn.Module, int]]] = {
    "small_cnn": small_cnn,
    **{name: _torchvision_resnet(name) for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")},
}


def build_backbone(name: str, pretrained: bool = False) -> tuple[nn.Module, int]:
    """The backbone ``name`` and the channel count of its feature map."""
    return BACKBONES[name](pretrained)
