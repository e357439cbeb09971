"""ResizeMix (Qin et al. 2020, arXiv:2012.11101): the whole partner image, shrunk into a box.

Unlike CutMix, no part of the partner is cut away, so whatever decides its class is in the
mix (smaller); the labels are weighted by the box's share of the pixels, as the authors do,
or (``labels="cam"``) by SnapMix's rule: the partner's label then weighs its whole CAM
mass, 1, and the image's label the CAM mass the box leaves uncovered.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from fgvc_mix.errors import UserError
from fgvc_mix.mixing.batch import MixedBatch
from fgvc_mix.mixing.boxes import box_areas, box_masks, paste, random_partner, to_device
from fgvc_mix.mixing.cam_labels import labels_cam_forward
from fgvc_mix.mixing.mixers import Mixer
from fgvc_mix.mixing.snapmix import snapmix_weights


def resize_boxes(
    batch_size: int,
    height: int,
    width: int,
    scope: tuple[float, float],
    per_sample: bool,
    generator: torch.Generator | None,
) -> Tensor:
    """One box per image (or one for the batch) of side ``int(W * tau)`` by ``int(H * tau)``, ``tau ~ U(scope)``.

    As the authors' ``getbox_new``: centred on a uniform pixel, then shifted (not clipped) to
    lie inside the image, so the partner is shrunk by ``tau`` along both axes, never squashed.
    """
    low, high = scope
    count = batch_size if per_sample else 1
    draw_device = generator.device if generator is not None else torch.device("cpu")
    tau = low + (high - low) * torch.rand(count, generator=generator, dtype=torch.float64, device=draw_device)
    cut_w, cut_h = (width * tau).long(), (height * tau).long()
    cx = torch.randint(width, (count,), generator=generator, device=draw_device)
    cy = torch.randint(height, (count,), generator=generator, device=draw_device)
    x1 = torch.minimum((cx - cut_w // 2).clamp_min(0), width - cut_w)
    y1 = torch.minimum((cy - cut_h // 2).clamp_min(0), height - cut_h)
    return torch.stack([x1, y1, x1 + cut_w, y1 + cut_h], dim=1).expand(batch_size, 4)


def resizemix(
    images: Tensor,
    targets: Tensor,
    *,
    scope: tuple[float, float] = (0.1, 0.8),
    per_sample: bool = False,
    cams: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> MixedBatch:
    """Resize each image's partner into a random box of it; an empty box leaves the image unmixed.

    Area labels: ``lam_b`` is the box's share of the pixels, ``lam_a = 1 - lam_b``.
    With ``cams`` (normalised target-class CAMs, B x H x W) the weights are SnapMix's
    (``snapmix_weights`` with the partner's whole image as its box). ``box_b`` is the
    partner's whole image (emptied with ``box_a``).
    """
    batch_size, _, height, width = images.shape
    host_a = resize_boxes(batch_size, height, width, scope, per_sample, generator)
    whole = torch.tensor([0, 0, width, height]).expand(batch_size, 4)
    host_b = whole * (box_areas(host_a) > 0)[:, None]
    partner, box_a, box_b = to_device([random_partner(batch_size, generator), host_a, host_b], images.device)

    # Batch mode pastes with the host boxes (one slice and one resize), per-image mode with the device's.
    mixed = paste(images, partner, box_a, box_b) if per_sample else paste(images, partner, host_a, host_b)
    if cams is None:
        lam_b = (box_areas(box_a) / (height * width)).float()
        lam_a = 1.0 - lam_b
    else:
        lam_a, lam_b = snapmix_weights(cams, partner, box_a, box_b)
    row_in, col_in = box_masks(box_a, height, width)  # where the shrunk partner shows
    mask = row_in[:, :, None] & col_in[:, None, :]
    return MixedBatch(mixed, targets, targets[partner], lam_a, lam_b, partner, box_a, box_b, mask)


class ResizeMix(Mixer):
    """ResizeMix (authors: ``tau ~ U(0.1, 0.8)``, area labels); ``labels="cam"`` weighs them by CAM mass
    (``cam_options``: ``CamForward``'s, with ``labels="cam"`` only)."""

    name = "resizemix"

    def __init__(
        self,
        prob: float = 1.0,
        scope: tuple[float, float] = (0.1, 0.8),
        labels: str = "area",
        per_sample: bool = False,
        seed: int | None = None,
        **cam_options,
    ):
        super().__init__(prob, per_sample, seed)
        self.cam_forward = labels_cam_forward(labels, cam_options)
        if not (isinstance(scope, Sequence) and len(scope) == 2 and 0.0 <= scope[0] <= scope[1] <= 1.0):
            raise UserError(
                f"mix.scope must be [low, high] with 0 <= low <= high <= 1 (box side / image side), got {scope}"
            )
        self.scope = (float(scope[0]), float(scope[1]))
        self.labels = labels

    def mix_batch(self, images: Tensor, targets: Tensor, cams: Tensor | None, generator: torch.Generator) -> MixedBatch:
        return resizemix(images, targets, scope=self.scope, per_sample=self.per_sample, cams=cams, generator=generator)
