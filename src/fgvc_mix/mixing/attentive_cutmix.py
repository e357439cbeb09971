"""Attentive CutMix (Walawalkar et al., ICASSP 2020, arXiv:2003.13048): the partner's most attended cells.

The image is cut into a ``grid`` x ``grid`` lattice; the ``top_k`` cells where the
partner's attention is highest are copied from the partner into the same cells of the
image, and the labels are weighted by the pasted share of the pixels (the authors: a 7x7
grid, 6 cells).

The attention is the model's own CAM of the partner's label, summed over each cell. The
authors instead take a separate ImageNet-pretrained ResNet-50's last 7x7 feature map
(averaged over channels, class-agnostic), which costs a second network; here it costs
the one no-grad CAM forward SnapMix runs, and follows the model as it learns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from fgvc_mix.errors import UserError
from fgvc_mix.mixing.batch import MixedBatch
from fgvc_mix.mixing.boxes import random_partner, to_device
from fgvc_mix.mixing.cam_forward import CamForward
from fgvc_mix.mixing.mixers import Mixer


def top_cell_masks(attention: Tensor, grid: int, top_k: int) -> Tensor:
    """Boolean (N, H, W) masks of the ``top_k`` cells of highest summed ``attention`` (N, H, W).

    Pixel row y lies in cell row ``y * grid // H`` (columns alike), so the cells tile the
    image exactly, one or two pixels apart in size when ``grid`` does not divide it.
    """
    count, height, width = attention.shape
    rows = torch.arange(height, device=attention.device) * grid // height
    cols = torch.arange(width, device=attention.device) * grid // width
    row_cells = F.one_hot(rows, grid).to(attention.dtype)
    col_cells = F.one_hot(cols, grid).to(attention.dtype)
    cell_mass = torch.einsum("nhw,hi,wj->nij", attention, row_cells, col_cells).reshape(count, grid * grid)
    top = cell_mass.topk(top_k, dim=1).indices
    chosen = torch.zeros_like(cell_mass, dtype=torch.bool).scatter_(1, top, True).reshape(count, grid, grid)
    return chosen[:, rows][:, :, cols]


def attentive_cutmix(
    images: Tensor,
    targets: Tensor,
    cams: Tensor,
    *,
    grid: int = 7,
    top_k: int = 6,
    generator: torch.Generator | None = None,
) -> MixedBatch:
    """Paste each partner's ``top_k`` CAM cells (cams: normalised, B x H x W) into the image.

    Every image gets its own mask (its own partner's cells); ``lam_b`` is the mask's share
    of the pixels, ``lam_a = 1 - lam_b``; ``top_k=0`` pastes nothing. ``box_a``/``box_b``
    are ``None``: the pasted region is not a box.
    """
    batch_size = images.shape[0]
    (partner,) = to_device([random_partner(batch_size, generator)], images.device)
    masks = top_cell_masks(cams.float()[partner], grid, top_k)
    mixed = torch.where(masks[:, None], images[partner], images)
    lam_b = masks.float().mean(dim=(1, 2))
    return MixedBatch(mixed, targets, targets[partner], 1.0 - lam_b, lam_b, partner, mask=masks)


class AttentiveCutMix(Mixer):
    """Attentive CutMix on the model's CAMs (authors: 7x7 grid, top 6 cells, every batch mixed).

    The cells are each partner's own, so every image has its own mask in both modes:
    ``per_sample`` changes nothing here (only the partner is drawn at random). ``cam_options``:
    ``CamForward``'s.
    """

    name = "attentive_cutmix"

    def __init__(
        self,
        prob: float = 1.0,
        grid: int = 7,
        top_k: int = 6,
        per_sample: bool = False,
        seed: int | None = None,
        **cam_options,
    ):
        super().__init__(prob, per_sample, seed)
        self.cam_forward = CamForward(**cam_options)
        if grid < 1:
            raise UserError(f"mix.grid must be >= 1 (cells per side), got {grid}")
        if not 0 <= top_k <= grid * grid:
            raise UserError(f"mix.top_k must be in [0, grid * grid = {grid * grid}] (cells pasted), got {top_k}")
        self.grid = int(grid)
        self.top_k = int(top_k)

    def mix_batch(self, images: Tensor, targets: Tensor, cams: Tensor | None, generator: torch.Generator) -> MixedBatch:
        return attentive_cutmix(images, targets, cams, grid=self.grid, top_k=self.top_k, generator=generator)
