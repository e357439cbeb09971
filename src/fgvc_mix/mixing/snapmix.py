"""SnapMix: semantically proportional mixing (Huang, Wang & Tao, AAAI 2021, arXiv:2012.04846).

A patch of a partner image (box_b) is resized into a box of the image (box_a), as
in CutMix but with two independently drawn boxes; each label's weight is the share
of that image's class activation map that survives in the mix, not the share of
pixels. On fine-grained data, where a small part decides the class, this keeps the
label tied to what the mixed image actually shows.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fgvc_mix.errors import UserError
from fgvc_mix.mixing.batch import MixedBatch
from fgvc_mix.mixing.boxes import box_areas, box_masks, draw_boxes, paste, random_partner, to_device

SAME_LABEL_RULES = ("sum", "keep")


def _mass_inside(maps: Tensor, boxes: Tensor) -> Tensor:
    """Sum of each (H, W) map inside its box, as one einsum over row and column masks."""
    row_in, col_in = box_masks(boxes, maps.shape[1], maps.shape[2])
    return torch.einsum("bhw,bh,bw->b", maps, row_in.to(maps.dtype), col_in.to(maps.dtype))


def snapmix_weights(cams: Tensor, partner: Tensor, box_a: Tensor, box_b: Tensor) -> tuple[Tensor, Tensor]:
    """``lam_a[i] = 1 - cams[i]`` summed inside ``box_a[i]``; ``lam_b[i] = cams[partner[i]]`` inside ``box_b[i]``.

    ``cams`` are normalised maps (B, H, W) as returned by ``class_activation_maps``.
    """
    cams = cams.float()
    partner, box_a, box_b = to_device([partner, box_a, box_b], cams.device)
    lam_a = 1.0 - _mass_inside(cams, box_a)
    lam_b = _mass_inside(cams[partner], box_b)
    return lam_a, lam_b


def draw_snapmix_pairs(
    batch_size: int, height: int, width: int, beta: float, per_sample: bool, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(partner, box_a, box_b)`` on the generator's device, in SnapMix's draw order.

    Two independent Beta(beta, beta) boxes (one each per image with ``per_sample``, else
    one each for the batch), then a random permutation; a pair with an empty box gets two
    empty boxes (it is not mixed). The label-noise meter draws its pairs here too, so it
    scores exactly the geometry SnapMix trains with.
    """
    box_a = draw_boxes(batch_size, height, width, beta, per_sample, generator)
    box_b = draw_boxes(batch_size, height, width, beta, per_sample, generator)
    partner = random_partner(batch_size, generator)
    active = (box_areas(box_a) > 0) & (box_areas(box_b) > 0)
    return partner, box_a * active[:, None], box_b * active[:, None]


def snapmix(
    images: Tensor,
    targets: Tensor,
    cams: Tensor,
    *,
    beta: float = 5.0,
    per_sample: bool = False,
    same_label: str = "sum",
    generator: torch.Generator | None = None,
) -> MixedBatch:
    """Mix a batch with SnapMix given each image's normalised target-class CAM (B, H, W).

    Paper semantics (the authors' code): two independent lambdas from Beta(beta, beta),
    one per box; the partner from a random permutation; a pair with an empty box is
    not mixed (weights 1 and 0); with ``same_label="sum"`` a pair with equal labels
    gets ``lam_a = lam_b = lam_a + lam_b`` as the authors chose (``"keep"`` leaves
    the weights as computed). ``per_sample=True`` draws boxes and lambdas per image.
    """
    if same_label not in SAME_LABEL_RULES:
        raise UserError(f"same_label must be one of {SAME_LABEL_RULES}, got {same_label!r}")
    batch_size, _, height, width = images.shape
    partner, host_a, host_b = draw_snapmix_pairs(batch_size, height, width, beta, per_sample, generator)
    partner, box_a, box_b = to_device([partner, host_a, host_b], images.device)

    # Batch mode pastes with the host boxes (Python ints for slicing), per-image mode with the device's.
    mixed = paste(images, partner, box_a, box_b) if per_sample else paste(images, partner, host_a, host_b)
    lam_a, lam_b = snapmix_weights(cams, partner, box_a, box_b)
    targets_b = targets[partner]
    if same_label == "sum":
        same = (targets == targets_b) & (box_areas(box_a) > 0)  # inactive pairs had both boxes emptied
        total = lam_a + lam_b
        lam_a = torch.where(same, total, lam_a)
        lam_b = torch.where(same, total, lam_b)
    return MixedBatch(mixed, targets, targets_b, lam_a, lam_b, partner, box_a, box_b)
