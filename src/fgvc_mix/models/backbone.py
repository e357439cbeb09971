"""What every backbone is: a body up to the stage before last, then the last stage; and what builders share.

SnapMix reads CAMs off the last map; the paper's mid-level branch ("Baseline+")
classifies from the penultimate one (layer3 of a ResNet). The builders live by
source: torchvision (``backbones``), timm (``timm_backbones``), offline ImageNet
EfficientNet-Lite (``efficientnet_lite``), timm's transformers (``transformers``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor, nn

from fgvc_mix.data.transforms import IMAGENET_MEAN, IMAGENET_STD

_ARCHITECTURE_ONLY: ContextVar[bool] = ContextVar("architecture_only", default=False)


@contextmanager
def architecture_only() -> Iterator[None]:
    """Build backbones without downloading or reading pretrained weights (``pretrained``/``weights_path`` still
    decide the architecture, e.g. Inception's input stem): a checkpoint's own weights replace them, so
    evaluating it needs neither the network nor the file it was initialised from.

    A new builder must ask ``building_architecture_only()`` before it reads or downloads any weights.
    """
    token = _ARCHITECTURE_ONLY.set(True)
    try:
        yield
    finally:
        _ARCHITECTURE_ONLY.reset(token)


def building_architecture_only() -> bool:
    """True inside ``architecture_only()``: the builder must not read or download weights."""
    return _ARCHITECTURE_ONLY.get()


class Backbone(nn.Module):
    """``body`` (up to the stage before last) then ``last_stage``; ``forward`` gives the last feature map.

    ``aux`` (Inception-v3's auxiliary classifier without its ImageNet ``fc``) maps the
    penultimate map to ``aux_channels`` features; the classifier adds its linear layer.
    """

    def __init__(
        self,
        body: nn.Module,
        last_stage: nn.Module,
        mid_channels: int,
        out_channels: int,
        aux: nn.Module | None = None,
        aux_channels: int = 0,
    ) -> None:
        super().__init__()
        self.body = body
        self.last_stage = last_stage
        self.mid_channels = mid_channels
        self.out_channels = out_channels
        self.aux = aux
        self.aux_channels = aux_channels

    def forward(self, images: Tensor) -> Tensor:
        return self.last_stage(self.body(images))

    def forward_stages(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(penultimate, last) feature maps."""
        mid = self.body(images)
        return mid, self.last_stage(mid)

    def forward_pooled(self, images: Tensor, with_mid: bool = False) -> tuple[Tensor | None, Tensor]:
        """(the penultimate map if ``with_mid`` else None, the features the linear head classifies).

        A CNN's head classifies the last map's spatial mean; a class-token transformer its class token.
        """
        if not with_mid:
            return None, self(images).mean(dim=(2, 3))
        mid, last = self.forward_stages(images)
        return mid, last.mean(dim=(2, 3))


class SignedUnitInput(nn.Module):
    """Re-normalise ImageNet-normalised images to the [-1, 1] range that Google's TensorFlow weights expect.

    Inception-v3 (torchvision's ``transform_input``, as in the SnapMix authors' code) and
    EfficientNet-Lite (TF-Lite: mean 0.5, std 0.5) were trained on that range; doing it in
    the model lets every datamodule keep ImageNet statistics.
    """

    def __init__(self) -> None:
        super().__init__()
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("scale", (std / 0.5).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((mean - 0.5) / 0.5).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return images * self.scale + self.shift
