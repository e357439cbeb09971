"""Every backbone family gives a CAM-ready feature map and trains a SnapMix step; transformers are refused."""

from __future__ import annotations

import sys

import pytest
import torch

from fgvc_mix.models import build_classifier
from fgvc_mix.train import train

SMALL_IMAGES = ("dataset.image_size=32", "dataset.resize_size=32")
INCEPTION_IMAGES = ("dataset.image_size=80", "dataset.resize_size=80")  # Inception-v3 needs >= 75 px

# model config, its overrides, and the builder arguments of the same model for the direct build test
FAMILIES = {
    "densenet": (["model=densenet121", *SMALL_IMAGES], ("densenet121", {}), 32),
    "efficientnet": (["model=efficientnet_b0", *SMALL_IMAGES], ("efficientnet_b0", {}), 32),
    "convnext": (["model=convnext_tiny", *SMALL_IMAGES], ("convnext_tiny", {}), 32),
    "inception": (["model=inception_v3", *INCEPTION_IMAGES], ("inception_v3", {}), 80),
    "timm": (["model=timm", "model.name=resnet10t", *SMALL_IMAGES], ("resnet10t", {"source": "timm"}), 32),
    "lite": (["model=efficientnet_lite0", *SMALL_IMAGES], ("efficientnet_lite0", {}), 32),
    "timm_efficientnet": (
        ["model=timm", "model.name=tf_efficientnet_lite0", *SMALL_IMAGES],
        ("tf_efficientnet_lite0", {"source": "timm"}),
        32,
    ),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_backbone_gives_feature_maps_and_trains_a_snapmix_step(family, tiny_config):
    overrides, (name, options), size = FAMILIES[family]
    model = build_classifier(name, num_classes=4, **options).eval()
    images = torch.randn(2, 3, size, size)
    mid, last = model.backbone.forward_stages(images)
    assert last.ndim == 4 and last.shape[1] == model.head.in_features == model.backbone.out_channels
    assert mid.ndim == 4 and mid.shape[1] == model.backbone.mid_channels
    assert model(images).shape == (2, 4)

    cfg = tiny_config(
        *overrides,
        "model.pretrained=false",
        "mix=snapmix",
        "mix.prob=1.0",
        "trainer=debug",
        "dataset.batch_size=4",
        "logger=[]",
        "callbacks=[]",
    )
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["test/loss"]))


def test_densenet_last_stage_ends_with_the_relu_torchvision_applies_functionally():
    model = build_classifier("densenet121", num_classes=3)
    assert isinstance(model.backbone.last_stage[-1], torch.nn.ReLU)
    assert model.backbone.out_channels == 1024 and model.backbone.mid_channels == 512


def test_inception_aux_head_trains_at_0_4_and_never_predicts():
    model = build_classifier("inception_v3", num_classes=3)
    images = torch.randn(2, 3, 80, 80)
    outputs = model.train().forward_heads(images)
    assert set(outputs) == {"main", "aux"} and outputs["aux"].shape == (2, 3)
    assert model.loss_weight("aux") == pytest.approx(0.4) and model.loss_weight("main") == 1.0
    assert "aux" not in model.head_names
    model.eval()
    assert set(model.forward_heads(images)) == {"main"}
    # The auxiliary convolutions are pretrained (backbone); only its new linear layer is a head.
    head_params = {id(p) for p in model.parameter_groups()["head"]}
    assert {id(p) for p in model.aux_head.parameters()} <= head_params
    assert not {id(p) for p in model.backbone.aux.parameters()} & head_params
    no_aux = build_classifier("inception_v3", num_classes=3, backbone_options={"aux_logits": False})
    assert no_aux.aux_head is None and set(no_aux.train().forward_heads(images)) == {"main"}


def test_unsupported_transformers_are_refused_with_a_clear_error():
    # timm's ViT/DeiT/Swin are supported (tests/test_transformers.py); torchvision's and other families are not.
    with pytest.raises(ValueError, match=r"Use model=timm model\.name=<timm name>"):
        build_classifier("vit_b_16", num_classes=3)
    with pytest.raises(ValueError, match="not a supported transformer"):
        build_classifier("mixer_s32_224", num_classes=3, source="timm", image_size=64)
    with pytest.raises(ValueError, match="global_pool"):
        build_classifier(
            "vit_tiny_patch16_224", 3, source="timm", image_size=64, backbone_options={"global_pool": "max"}
        )


def test_timm_missing_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ImportError, match=r"pip install 'fgvc_mix\[timm\]'"):
        build_classifier("resnet10t", num_classes=3, source="timm")
    with pytest.raises(ValueError, match=r"model\.source"):
        build_classifier("resnet18", num_classes=3, source="keras")


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_dilated_last_stage_doubles_the_map_and_computes_the_same_features_on_its_even_cells(name):
    plain = build_classifier(name, num_classes=3, backbone_options={"width": 8}).eval()
    dilated = build_classifier(name, num_classes=3, backbone_options={"width": 8, "dilate_last_stage": True}).eval()
    shapes = {key: value.shape for key, value in plain.state_dict().items()}
    assert {key: value.shape for key, value in dilated.state_dict().items()} == shapes  # weights load either way
    dilated.load_state_dict(plain.state_dict())
    images = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        coarse, fine = plain.backbone(images), dilated.backbone(images)
    assert coarse.shape[-2:] == (4, 4) and fine.shape[-2:] == (8, 8)
    # Dilation 2 after the removed stride: every other cell is the strided network's output, so pretrained weights
    # keep their meaning and the extra cells fill in between (dilation 1 there would not match).
    torch.testing.assert_close(fine[..., ::2, ::2], coarse, rtol=1e-4, atol=1e-5)


def test_dilated_last_stage_is_torchvisions_for_bottlenecks_and_part_of_the_pretraining_cache_key(tmp_path):
    import torchvision

    from fgvc_mix.models.backbones import resnet_network
    from fgvc_mix.pretrain import weights_file
    from fgvc_mix.training.config import compose_config

    def geometry(net):
        return [(m.stride, m.dilation, m.padding) for m in net.layer4.modules() if isinstance(m, torch.nn.Conv2d)]

    ours = resnet_network("resnet50", width=64, dilate_last_stage=True)
    assert geometry(ours) == geometry(torchvision.models.resnet50(replace_stride_with_dilation=[False, False, True]))
    plain = compose_config([], tmp_path / "a", config_name="pretrain")
    dilated = compose_config(["+model.dilate_last_stage=true"], tmp_path / "b", config_name="pretrain")
    assert weights_file(plain) != weights_file(dilated)
