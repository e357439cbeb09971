"""What the CAM-guided mixers share: getting the CAMs, and label weights as CAM mass under a mask.

SnapMix's box weights live in ``snapmix.snapmix_weights``; the mixers whose partner
region is a mask of any shape (FMix), not a box, weight labels here in the same way.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fgvc_mix.mixing.mixers import CamFunction

LABEL_RULES = ("area", "cam")


def check_labels(labels: str) -> bool:
    """Whether ``mix.labels`` asks for CAM-based weights (SnapMix's rule) rather than area ones."""
    if labels not in LABEL_RULES:
        raise ValueError(
            f"mix.labels must be one of {LABEL_RULES} (area: pixel share; cam: CAM mass, as SnapMix), got {labels!r}"
        )
    return labels == "cam"


def require_cams(cam_fn: CamFunction | None, images: Tensor, targets: Tensor, method: str) -> Tensor:
    """The batch's normalised target-class CAMs (B, H, W), or one clear error when no CAM source was given."""
    if cam_fn is None:
        raise ValueError(f"{method} needs class activation maps: pass cam_fn(images, targets) -> (B, H, W) CAMs")
    return cam_fn(images, targets)


def mask_weights(cams: Tensor, partner: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """SnapMix's weights for a partner region given as a mask at the same place in both images.

    ``mask`` (B, H, W) is true where image i shows its partner (at the same pixels):
    ``lam_a[i] = 1 - sum(cams[i] * mask[i])``, the image's CAM mass that survives, and
    ``lam_b[i] = sum(cams[partner[i]] * mask[i])``, the partner's CAM mass that is shown.
    """
    cams = cams.float()
    weights = mask.to(cams.dtype)
    lam_a = 1.0 - torch.einsum("bhw,bhw->b", cams, weights)
    lam_b = torch.einsum("bhw,bhw->b", cams[partner], weights)
    return lam_a, lam_b
