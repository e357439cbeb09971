"""What the mixers with a choice of labels share: the choice, and label weights as CAM mass under a mask.

SnapMix's box weights live in ``snapmix.snapmix_weights``; the mixers whose partner
region is a mask of any shape (FMix), not a box, weight labels here in the same way.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fgvc_mix.errors import UserError
from fgvc_mix.mixing.cam_forward import CamForward

LABEL_RULES = ("area", "cam")


def labels_cam_forward(labels: str, cam_options: dict[str, Any]) -> CamForward | None:
    """The ``CamForward`` of a mixer whose ``mix.labels`` may ask for CAM-mass weights (SnapMix's rule);
    ``None`` for area labels, which need no CAMs and so take no ``mix.cam_*`` options."""
    if labels not in LABEL_RULES:
        raise UserError(
            f"mix.labels must be one of {LABEL_RULES} (area: pixel share; cam: CAM mass, as SnapMix), got {labels!r}"
        )
    if labels == "cam":
        return CamForward(**cam_options)
    if cam_options:
        raise UserError(
            f"mix.{next(iter(cam_options))} configures the CAM forward, which only mix.labels=cam runs: "
            "drop it, or set mix.labels=cam"
        )
    return None


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
