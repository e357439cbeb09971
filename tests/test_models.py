"""Backbones give CAM-ready feature maps; the mid-level branch; local weights files."""

from __future__ import annotations

import pytest
import torch
import torchvision
from helpers import compose_config

from fgvc_mix.models import build_classifier
from fgvc_mix.training.config import build_from_config


@pytest.mark.parametrize("name", ["small_cnn", "resnet18", "resnet50"])
def test_backbones_return_feature_maps_and_logits(name):
    model = build_classifier(name, num_classes=5)
    images = torch.randn(2, 3, 64, 64)
    features = model.forward_features(images)
    assert features.ndim == 4 and features.shape[1] == model.head.in_features
    mid, last = model.backbone.forward_stages(images)
    assert mid.shape[1] == model.backbone.mid_channels and torch.equal(last, features)
    assert model(images).shape == (2, 5)


@pytest.mark.parametrize("detach", [True, False])
def test_mid_level_branch_sums_logits_and_detaches(detach):
    model = build_classifier("resnet18", num_classes=4, mid_level=True, mid_level_channels=32, mid_level_detach=detach)
    images = torch.randn(2, 3, 64, 64)
    outputs = model.forward_heads(images)
    assert set(outputs) == {"main", "mid"} and model.head_names == ("main", "mid")
    torch.testing.assert_close(model(images), outputs["main"] + outputs["mid"])
    model.zero_grad()
    outputs["mid"].sum().backward()
    backbone_grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert bool(backbone_grads) != detach
    assert model.mid_level.classifier.weight.grad is not None
    groups = model.parameter_groups()
    head_params = {id(p) for p in groups["head"]}
    assert {id(p) for p in model.mid_level.parameters()} <= head_params


@pytest.mark.parametrize(("name", "width"), [("resnet18", 256), ("resnet34", 256), ("resnet50", 1024)])
def test_model_configs_make_the_mid_level_branch_as_wide_as_layer3(name, width, tmp_path):
    """The authors' Baseline+ branch is a 1x1 conv from layer3's width to the same width (their ``mid_dim``)."""
    cfg = compose_config([f"model={name}", "model.pretrained=false", "model.mid_level=true"], tmp_path)
    conv = build_from_config(cfg.model, num_classes=4).mid_level.conv[0]
    assert conv.in_channels == conv.out_channels == width


def test_weights_path_loads_a_torchvision_state_dict(tmp_path):
    reference = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_classifier("resnet18", num_classes=3, weights_path=str(path))
    torch.testing.assert_close(model.backbone.body[0].weight, reference.conv1.weight)
    torch.testing.assert_close(model.backbone.last_stage[0].conv1.weight, reference.layer4[0].conv1.weight)
    assert model.pretrained_backbone
    torch.save({"conv1.weight": reference.conv1.weight}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="not a torchvision resnet18 state dict"):
        build_classifier("resnet18", num_classes=3, weights_path=str(tmp_path / "partial.pth"))
    with pytest.raises(FileNotFoundError, match=r"model\.weights_path"):
        build_classifier("resnet18", num_classes=3, weights_path=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="choose one of"):
        build_classifier("vgg_tiny", num_classes=3)
