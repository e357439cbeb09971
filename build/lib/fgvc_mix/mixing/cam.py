"""Class activation maps (Zhou et al., CVPR 2016) for each image's target class only."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

FLAT_TOLERANCE = 1e-5


def class_activation_maps(
    features: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor, size: tuple[int, int]
) -> Tensor:
    """Normalised CAMs of each image's target class, shape (B, H, W), float32, each summing to one.

    ``features`` (B, C, h, w) is the last feature map and ``weight`` (K, C) / ``bias``
    (K,) the linear head applied after global average pooling. Only the target
    class's map is built (one weight row per image), not all K maps as the authors'
    code does. The map is upsampled bilinearly to ``size``, shifted to a minimum of
    zero and divided by its sum. A map with no mass (constant, e.g. dead ReLU
    features) or a non-finite one becomes uniform rather than NaN, so the SnapMix
    weights it produces are the area-based ones.
    """
    features = features.float().relu()
    maps = torch.einsum("bchw,bc->bhw", features, weight.float()[targets])
    if bias is not None:
        maps = maps + bias.float()[targets][:, None, None]
    maps = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = maps.amax(dim=(1, 2), keepdim=True)
    maps = maps - low
    total = maps.sum(dim=(1, 2), keepdim=True)
    # A constant map comes out of the upsampling with rounding ripples; normalising them would
    # turn noise into a confident map, so a spread within float32 precision counts as flat.
    flat = (high - low) <= FLAT_TOLERANCE * torch.maximum(high.abs(), low.abs())
    usable = torch.isfinite(total) & (total > 0) & ~flat
    uniform = torch.full_like(maps, 1.0 / (size[0] * size[1]))
    return torch.where(usable, maps / torch.where(usable, total, 1.0), uniform)
