"""Cached BatchNorm folding: refolded exactly when training changed what it was folded from, never stale."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fgvc_mix.models import build_classifier
from fgvc_mix.models.batchnorm_folding import _FoldedPairs, conv_batchnorm_pairs, folded_batchnorm


@pytest.fixture
def refolds(monkeypatch) -> list[int]:
    """Counts the (batched) refolds."""
    calls: list[int] = []
    original = _FoldedPairs.refold

    def counting(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(_FoldedPairs, "refold", counting)
    return calls


def folded_and_eval(backbone: nn.Module, pairs, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    was_training = backbone.training
    backbone.eval()
    with torch.inference_mode():
        expected = backbone(images)
        with folded_batchnorm(backbone, pairs):
            folded = backbone(images)
    backbone.train(was_training)
    return folded, expected


def train_step(backbone: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor) -> None:
    backbone.train()
    optimizer.zero_grad()
    backbone(images).square().mean().backward()
    optimizer.step()


@pytest.mark.parametrize("optimizer_class", [torch.optim.SGD, torch.optim.AdamW])
def test_folding_follows_training_and_refolds_once_per_change(optimizer_class, refolds):
    torch.manual_seed(0)
    backbone = build_classifier("resnet18", num_classes=5).backbone
    pairs = conv_batchnorm_pairs(backbone)
    optimizer = optimizer_class(backbone.parameters(), lr=1e-3)
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for step in range(3):
        train_step(backbone, optimizer, images)  # new weights and running statistics
        for _ in range(2):  # a second CAM forward on the same weights reuses the folded ones
            folded, expected = folded_and_eval(backbone, pairs, images)
            torch.testing.assert_close(folded, expected, rtol=1e-4, atol=1e-4)
        assert len(refolds) == step + 1


def test_folding_follows_running_statistics_alone_and_state_dict_loads(refolds):
    backbone = build_classifier("small_cnn", num_classes=3).backbone
    pairs = conv_batchnorm_pairs(backbone)
    images = torch.randn(2, 3, 32, 32)
    folded_and_eval(backbone, pairs, images)
    with torch.no_grad():
        backbone.train()(images * 3 + 1)  # a train-mode forward: running statistics only
    torch.testing.assert_close(*folded_and_eval(backbone, pairs, images), rtol=1e-4, atol=1e-4)
    other = build_classifier("small_cnn", num_classes=3).backbone
    for layer in other.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_var.fill_(4.0)
    backbone.load_state_dict(other.state_dict())
    torch.testing.assert_close(*folded_and_eval(backbone, pairs, images), rtol=1e-4, atol=1e-4)
    backbone.double()  # new tensors, same version counters
    torch.testing.assert_close(*folded_and_eval(backbone, pairs, images.double()), rtol=1e-8, atol=1e-8)
    assert len(refolds) == 4


def test_folded_weights_stay_out_of_the_state_dict_and_keep_the_layout():
    backbone = build_classifier("resnet18", num_classes=5).backbone.to(memory_format=torch.channels_last).eval()
    keys = set(backbone.state_dict())
    pairs = conv_batchnorm_pairs(backbone)
    with torch.inference_mode(), folded_batchnorm(backbone, pairs):
        assert set(backbone.state_dict()).isdisjoint({"folded_weight", "folded_bias"})
        folded_conv = backbone.get_submodule(pairs[0][0])
        assert folded_conv.folded_weight.is_contiguous(memory_format=torch.channels_last)
    assert set(backbone.state_dict()) == keys


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_folding_follows_a_bf16_training_step_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # compare in true fp32
    backbone = build_classifier("resnet18", num_classes=5).backbone.cuda().to(memory_format=torch.channels_last)
    pairs = conv_batchnorm_pairs(backbone)
    optimizer = torch.optim.SGD(backbone.parameters(), lr=0.05, momentum=0.9)
    images = torch.randn(4, 3, 64, 64, device="cuda").contiguous(memory_format=torch.channels_last)
    for _ in range(2):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            train_step(backbone, optimizer, images)
        torch.testing.assert_close(*folded_and_eval(backbone, pairs, images), rtol=1e-4, atol=1e-4)
