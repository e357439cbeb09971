"""torchvision's backbones, split before their last stage, and the registry ``build_backbone`` reads.

Every builder keeps a CNN's spatial output: ResNet, DenseNet, Inception-v3, EfficientNet
and ConvNeXt from torchvision; EfficientNet-Lite with offline ImageNet weights
(``efficientnet_lite``); any convolutional timm model and timm's ViT/Swin
(``timm_backbones``, ``transformers``). torchvision's transformers are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.models.inception import InceptionAux
from torchvision.models.resnet import BasicBlock, Bottleneck

from fgvc_mix.errors import UserError, WeightsUnavailableError
from fgvc_mix.models.backbone import Backbone, SignedUnitInput, building_architecture_only
from fgvc_mix.models.efficientnet_lite import LITE_VARIANTS, efficientnet_lite
from fgvc_mix.models.timm_backbones import is_transformer, timm_backbone


def reject_transformer(name: str) -> None:
    """A clear error for torchvision's transformers: their token CAMs come through timm's models."""
    if is_transformer(name):
        raise UserError(
            f"model.name={name!r} is a torchvision transformer/MLP model: fgvc_mix builds token CAMs from timm's "
            "vision transformers only. Use model=timm model.name=<timm name> (e.g. deit_tiny_patch16_224, "
            "vit_base_patch16_224, swin_tiny_patch4_window7_224), or a convolutional backbone"
        )


def small_cnn(pretrained: bool = False, weights_path: str | None = None, width: int = 32) -> Backbone:
    """Four stages of two conv-BN-ReLU (``width`` x 1, 2, 4, 8 channels), three 2x poolings: an 8x8 map at 64 px.

    For the synthetic demo on a CPU: a ResNet's 32x downsampling leaves a 2x2 map at 64 px,
    too coarse for CAMs to locate small parts.
    """
    if pretrained or weights_path:
        raise UserError("model=small_cnn has no pretrained weights; set model.pretrained=false, weights_path=null")
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
    if building_architecture_only():
        return
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.weights_path={path} does not exist: point it at a saved state dict of torchvision's {name}, "
            "or set model.weights_path=null"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        missing, _ = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # tensors of other shapes: another width or variant
        raise UserError(
            f"model.weights_path={path} does not fit this {name} ({str(error).splitlines()[-1].strip()}). "
            "Build the model the weights were trained as (e.g. the same model.backbone_options.width)"
        ) from None
    missing = [key for key in missing if not key.startswith(classifier_prefix)]
    if missing:
        raise UserError(f"model.weights_path={path} is not a torchvision {name} state dict: missing {missing[:5]}")


def weights_download_error(name: str, error: OSError) -> OSError:
    """Offline, say where torchvision looks for the file and how to train without it, not urllib's traceback."""
    url = torchvision.models.get_model_weights(name).DEFAULT.url
    cached = Path(torch.hub.get_dir(), "checkpoints", Path(url).name)
    return WeightsUnavailableError(
        f"model={name}: cannot download torchvision's ImageNet weights from {url} "
        f"({getattr(error, 'reason', None) or error}). Offline, either copy that file to {cached} "
        f"(torchvision's cache: torch.hub.get_dir()/checkpoints, $TORCH_HOME), set model.weights_path=<file> "
        f"(a saved state dict of torchvision's {name}), or set model.pretrained=false to train from scratch"
    )


def _torchvision_model(
    name: str, pretrained: bool, weights_path: str | None, classifier_prefix: str, **kwargs
) -> nn.Module:
    """torchvision's ``name``; ``kwargs`` go to its constructor (e.g. DenseNet's ``memory_efficient``)."""
    download = pretrained and not weights_path and not building_architecture_only()
    try:
        model = getattr(torchvision.models, name)(weights="DEFAULT" if download else None, **kwargs)
    except OSError as error:  # URLError, timeouts, SSL errors: no way to the download server
        if not download:
            raise
        raise weights_download_error(name, error) from None
    if weights_path:
        load_torchvision_weights(model, weights_path, name, classifier_prefix)
    return model


RESNET_LAYOUTS: dict[str, tuple[type[BasicBlock | Bottleneck], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}
TORCHVISION_RESNET_WIDTH = 64


class NarrowResNet(torchvision.models.ResNet):
    """torchvision's ResNet with ``width`` stem channels instead of 64, every stage scaled alike.

    Same blocks and module names as torchvision's, so its state dicts have torchvision's
    keys and load through ``model.weights_path``: a backbone small enough to pretrain on
    a CPU in minutes (``python -m fgvc_mix.pretrain``). ``dilate_last_stage``: see ``dilate_layer4``.
    """

    def __init__(self, name: str, width: int, num_classes: int = 1000, dilate_last_stage: bool = False) -> None:
        if width < 1:
            raise UserError(f"model.backbone_options.width must be >= 1, got {width}")
        block, layers = RESNET_LAYOUTS[name]
        super().__init__(block, [1, 1, 1, 1], num_classes)  # torchvision's bookkeeping; the layers are rebuilt
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2)
        self.fc = nn.Linear(8 * width * block.expansion, num_classes)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if dilate_last_stage:
            dilate_layer4(self)


def dilate_layer4(net: torchvision.models.ResNet) -> None:
    """layer4 with stride 1, and dilation 2 in every 3x3 convolution after the removed stride: a 2x larger last map.

    What torchvision's ``replace_stride_with_dilation=[False, False, True]`` builds for Bottleneck ResNets,
    extended to BasicBlock ones (ResNet-18/34, which torchvision refuses). Only strides, dilations and
    paddings change, so the parameters, and the weights trained with or without it, are the same.
    """
    strided = False
    for module in net.layer4.modules():
        if not isinstance(module, nn.Conv2d):
            continue
        if module.stride == (2, 2):
            module.stride, strided = (1, 1), True
        elif strided and module.kernel_size == (3, 3):
            module.dilation, module.padding = (2, 2), (2, 2)


def resnet_network(
    name: str,
    pretrained: bool = False,
    weights_path: str | None = None,
    width: int = TORCHVISION_RESNET_WIDTH,
    dilate_last_stage: bool = False,
) -> torchvision.models.ResNet:
    """torchvision's ResNet ``name``, or a ``NarrowResNet`` when ``width`` is not torchvision's 64.

    ``dilate_last_stage``: layer4 with stride 1 and dilation 2 (a 2x larger last map for the CAMs, ~4x that
    stage's compute); the parameters are unchanged, so weights trained either way load.
    """
    if width == TORCHVISION_RESNET_WIDTH:
        net = _torchvision_model(name, pretrained, weights_path, "fc.")
        if dilate_last_stage:
            dilate_layer4(net)
        return net
    if pretrained and not weights_path:
        raise UserError(
            f"model.backbone_options.width={width}: torchvision's ImageNet weights exist only for width "
            f"{TORCHVISION_RESNET_WIDTH}; set model.pretrained=false, or model.weights_path to weights of this "
            "width (python -m fgvc_mix.pretrain writes them)"
        )
    net = NarrowResNet(name, width, dilate_last_stage=dilate_last_stage)
    if weights_path:
        load_torchvision_weights(net, weights_path, name, "fc.")
    return net


def resnet(name: str) -> Callable[..., Backbone]:
    def build(
        pretrained: bool = False, weights_path: str | None = None, width: int = 64, dilate_last_stage: bool = False
    ) -> Backbone:
        """``width``: channels of the stem (torchvision: 64), every stage scaled alike; ``dilate_last_stage``:
        layer4 dilated instead of strided (``model.backbone_options.dilate_last_stage=true``)."""
        net = resnet_network(name, pretrained, weights_path, width, dilate_last_stage)
        body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3)
        return Backbone(body, net.layer4, net.layer4[0].conv1.in_channels, net.fc.in_features)

    return build


def densenet(name: str) -> Callable[..., Backbone]:
    def build(pretrained: bool = False, weights_path: str | None = None, **options) -> Backbone:
        features = _torchvision_model(name, pretrained, weights_path, "classifier.", **options).features
        body = features[:10]  # conv0 .. transition3
        # torchvision applies the final ReLU functionally in DenseNet.forward; the CAMs need it in the map.
        last = nn.Sequential(features.denseblock4, features.norm5, nn.ReLU(inplace=True))
        mid_channels = features.denseblock4.denselayer1.norm1.num_features
        return Backbone(body, last, mid_channels, features.norm5.num_features)

    return build


class InceptionAuxFeatures(nn.Module):
    """Inception-v3's auxiliary branch on Mixed_6e without its ``fc``: 768 pooled features.

    Below 299 px (Mixed_6e under 17x17) the 5x5/3 average pool would leave too little for
    its 5x5 convolution, so small maps are pooled adaptively to 5x5 instead (tests, tiny inputs).
    """

    def __init__(self, aux: InceptionAux) -> None:
        super().__init__()
        self.conv0 = aux.conv0
        self.conv1 = aux.conv1

    def forward(self, features: Tensor) -> Tensor:
        small = min(features.shape[-2:]) < 17
        features = F.adaptive_avg_pool2d(features, 5) if small else F.avg_pool2d(features, kernel_size=5, stride=3)
        return F.adaptive_avg_pool2d(self.conv1(self.conv0(features)), 1).flatten(1)


def inception_v3(pretrained: bool = False, weights_path: str | None = None, aux_logits: bool = True) -> Backbone:
    """Inception-v3 split after Mixed_6e; ``aux_logits`` keeps its auxiliary classifier (0.4x loss, as the authors)."""
    # The ImageNet weights come with the auxiliary branch; from scratch, Google's initialisation.
    init = {} if pretrained and not weights_path else {"init_weights": not weights_path}
    net = _torchvision_model("inception_v3", pretrained, weights_path, "fc.", aux_logits=True, **init)
    stem = [SignedUnitInput()] if pretrained or weights_path else []
    names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
    names += [
        "maxpool2",
        "Mixed_5b",
        "Mixed_5c",
        "Mixed_5d",
        "Mixed_6a",
        "Mixed_6b",
        "Mixed_6c",
        "Mixed_6d",
        "Mixed_6e",
    ]
    body = nn.Sequential(*stem, *(getattr(net, n) for n in names))
    last = nn.Sequential(net.Mixed_7a, net.Mixed_7b, net.Mixed_7c)
    aux = InceptionAuxFeatures(net.AuxLogits) if aux_logits else None
    return Backbone(body, last, 768, net.fc.in_features, aux, net.AuxLogits.fc.in_features if aux_logits else 0)


def efficientnet(name: str) -> Callable[..., Backbone]:
    """Split before the stride-32 stages (as layer4 of a ResNet): stages 6, 7 and the final 1x1 conv are last."""

    def build(pretrained: bool = False, weights_path: str | None = None, **options) -> Backbone:
        net = _torchvision_model(name, pretrained, weights_path, "classifier.", **options)
        body, last = net.features[:6], net.features[6:]
        return Backbone(body, last, net.features[5][-1].out_channels, net.classifier[1].in_features)

    return build


def convnext(name: str) -> Callable[..., Backbone]:
    """Split before the last downsampling; the map is the last stage's output.

    torchvision's ConvNeXt pools, then applies a LayerNorm, then its Linear. The CAM
    needs the head linear in the feature map, so that LayerNorm (and its ImageNet
    weights) is dropped: our head is average pool + Linear on the raw last stage.
    """

    def build(pretrained: bool = False, weights_path: str | None = None, **options) -> Backbone:
        net = _torchvision_model(name, pretrained, weights_path, "classifier.", **options)
        body, last = net.features[:6], net.features[6:]
        return Backbone(body, last, net.features[6][0].normalized_shape[0], net.classifier[2].in_features)

    return build


BACKBONES: dict[str, Callable[..., Backbone]] = {
    "small_cnn": small_cnn,
    **{name: resnet(name) for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")},
    **{name: densenet(name) for name in ("densenet121", "densenet161", "densenet201")},
    "inception_v3": inception_v3,
    **{name: efficientnet(name) for name in ("efficientnet_b0", "efficientnet_b3")},
    "convnext_tiny": convnext("convnext_tiny"),
    **{name: efficientnet_lite(name) for name in LITE_VARIANTS},
}


def build_backbone(
    name: str,
    pretrained: bool = False,
    weights_path: str | None = None,
    source: str = "builtin",
    image_size: int | None = None,
    **options,
) -> Backbone:
    """The backbone ``name``; ``options`` go to its builder (e.g. ``small_cnn``'s ``width``).

    ``source="timm"`` takes ``name`` as a timm model name instead of a key of ``BACKBONES``;
    ``image_size`` sizes a timm transformer's position embeddings (other models ignore it).
    """
    if source == "timm":
        return timm_backbone(name, pretrained, weights_path, image_size, **options)
    if source != "builtin":
        raise UserError(f"model.source={source!r} is not known; choose builtin (the BACKBONES names) or timm")
    reject_transformer(name)
    if name not in BACKBONES:
        raise UserError(
            f"model.name={name!r} is not a known backbone; choose one of {sorted(BACKBONES)}, "
            "or any convolutional timm model with model=timm model.name=<timm name>"
        )
    return BACKBONES[name](pretrained=pretrained, weights_path=weights_path, **options)
