"""timm's models as backbones: any convolutional timm model by name, its transformers through ``transformers``.

A CNN's last two ``features_only`` maps are (penultimate, last). timm's EfficientNet family
(``efficientnet_*``, ``tf_efficientnet_*``, ``mixnet_*``, …) is built whole instead, because
``features_only`` drops its final 1x1 ``conv_head`` + BN: the 1280-channel map its ImageNet
classifier pooled is the one its CAMs should come from. (MobileNetV3's ``conv_head`` acts after
global pooling, on a 1x1 map, so it is no part of any spatial map and is left out.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor, nn

from fgvc_mix.errors import UserError, WeightsUnavailableError
from fgvc_mix.models.backbone import Backbone, building_architecture_only
from fgvc_mix.models.transformers import transformer_backbone

# Name prefixes of transformer/MLP families (torchvision and timm): timm's go to models/transformers.py.
TRANSFORMER_PREFIXES = (
    "vit", "deit", "beit", "swin", "eva", "cait", "xcit", "crossvit", "pvt", "twins", "tnt", "mvit", "flexivit",
    "maxxvit", "samvit", "hiera", "levit", "coat_", "visformer", "sequencer", "mixer", "gmlp", "resmlp",
)  # fmt: skip
EFFICIENTNET_MODULE = "timm.models.efficientnet"


def is_transformer(name: str) -> bool:
    return name.lower().startswith(TRANSFORMER_PREFIXES)


def efficientnet_backbone(net: nn.Module, stem: Sequence[nn.Module] = ()) -> Backbone:
    """A whole timm ``EfficientNet`` split where its penultimate feature stage ends (as torchvision's split).

    The last stage keeps ``conv_head`` + ``bn2`` (BN and activation): the map ends where the
    ImageNet model pooled. ``stem`` goes first (e.g. an input re-normalisation).
    """
    mid = net.feature_info[-2]
    split = int(mid["module"].split(".")[1]) + 1  # "blocks.4": the body ends after stage 4
    body = nn.Sequential(*stem, net.conv_stem, net.bn1, *net.blocks[:split])
    last = nn.Sequential(*net.blocks[split:], net.conv_head, net.bn2)
    return Backbone(body, last, mid["num_chs"], net.num_features)


class TimmBackbone(Backbone):
    """A timm ``features_only`` model returning its last two feature maps (penultimate, last)."""

    def __init__(self, net: nn.Module, name: str) -> None:
        mid_channels, out_channels = net.feature_info.channels()
        super().__init__(net, nn.Identity(), mid_channels, out_channels)
        self.name = name

    def forward(self, images: Tensor) -> Tensor:
        return self.forward_stages(images)[1]

    def forward_stages(self, images: Tensor) -> tuple[Tensor, Tensor]:
        mid, last = self.body(images)
        if last.ndim != 4:
            raise UserError(
                f"timm model {self.name!r} gives {last.ndim}-D features, not a (B, C, h, w) map: SnapMix needs a "
                "CNN with a spatial feature map and a linear head; choose a convolutional timm model"
            )
        return mid, last


def timm_backbone(
    name: str, pretrained: bool = False, weights_path: str | None = None, image_size: int | None = None, **options
) -> Backbone:
    """Any convolutional timm model, or a ViT/Swin, by its timm name; ``weights_path`` loads a local timm checkpoint.

    ``options`` are ``create_model`` keywords; ``image_size`` reaches transformers only (CNNs take any size).
    """
    try:
        import timm
    except ImportError:
        raise ImportError(
            f"model=timm model.name={name} needs the optional timm package: pip install 'fgvc_mix[timm]'"
        ) from None
    if building_architecture_only():
        pretrained, weights_path = False, None
    if weights_path and not Path(weights_path).is_file():
        raise FileNotFoundError(f"model.weights_path={weights_path} does not exist: point it at a timm checkpoint")
    download = bool(pretrained) and not weights_path

    def create(model_name: str, **kwargs) -> nn.Module:
        try:
            return timm.create_model(
                model_name,
                pretrained=bool(pretrained or weights_path),
                pretrained_cfg_overlay={"file": weights_path} if weights_path else None,
                **kwargs,
            )
        except OSError as error:  # huggingface_hub's offline and HTTP errors
            if not download:
                raise
            raise WeightsUnavailableError(
                f"model.name={name}: cannot download timm's pretrained weights from the Hugging Face hub "
                f"({type(error).__name__}). Offline, either set model.weights_path=<file> (a timm checkpoint of "
                f"{name}), or model.pretrained=false to train from scratch"
            ) from None

    if is_transformer(name):
        return transformer_backbone(create, name, image_size, **options)
    if timm.is_model(name) and timm.models.model_entrypoint(name).__module__ == EFFICIENTNET_MODULE:
        return efficientnet_backbone(create(name, **options))
    try:
        net = create(name, features_only=True, out_indices=(-2, -1), **options)
    except RuntimeError as error:  # timm's "Unknown model" and "features_only not implemented"
        raise UserError(f"model.name={name!r}: timm cannot build it as a feature extractor ({error})") from None
    if any(module_name.endswith("patch_embed") for module_name, _ in net.named_modules()):
        raise UserError(  # a patch-embedding transformer under a name without a transformer prefix
            f"model.name={name!r} is a patch-embedding transformer that fgvc_mix does not know; token CAMs come "
            "from timm's vit_*, deit_* and swin_* models"
        )
    return TimmBackbone(net, name)
