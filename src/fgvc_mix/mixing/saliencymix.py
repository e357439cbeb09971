"""SaliencyMix (Uddin et al., ICLR 2021, arXiv:2006.01791): CutMix's box, centred on the partner's peak.

A box of CutMix's size is centred on the most salient pixel of the partner and copied
to the same place in the image, so the patch is likely to hold the partner's object;
the labels are weighted by area, as the authors do.

Saliency here is the model's own CAM of the partner's label, not the authors' static
saliency: their code runs OpenCV's ``StaticSaliencyFineGrained`` (Montabone & Soto 2010,
a centre-surround contrast of the pixels, independent of the model and the label) on the
partner image, on the host. The CAM says where the model finds the partner's class; it
costs the one no-grad forward SnapMix runs, and keeps the mixing on the device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fgvc_mix.mixing.batch import MixedBatch
from fgvc_mix.mixing.boxes import box_areas, box_masks, centred_boxes, random_partner, sample_beta, to_device
from fgvc_mix.mixing.cam_forward import CamForward
from fgvc_mix.mixing.mixers import Mixer, _check_positive


def peak_boxes(saliency: Tensor, cut_w: Tensor, cut_h: Tensor) -> Tensor:
    """(N, 4) boxes of side ``cut_w`` by ``cut_h`` (half-side ``cut // 2``, as ``rand_bbox``) centred on
    each (H, W) map's maximum (its first, in row-major order, on ties) and clipped to the image."""
    height, width = saliency.shape[-2:]
    peak = saliency.flatten(1).argmax(dim=1)
    return centred_boxes(peak % width, peak // width, cut_w, cut_h, height, width)


def saliencymix(
    images: Tensor,
    targets: Tensor,
    cams: Tensor,
    *,
    beta: float = 1.0,
    per_sample: bool = False,
    generator: torch.Generator | None = None,
) -> MixedBatch:
    """Mix a batch with SaliencyMix, the saliency being each partner's CAM (B, H, W).

    As the authors' code, batch mode uses one box for the whole batch, centred on the
    first partner's peak; ``per_sample=True`` gives each image its own lambda and a box
    on its own partner's peak. ``lam_b`` is the clipped box's share of the pixels; an
    empty box means no mixing for that image.
    """
    batch_size, _, height, width = images.shape
    lam = sample_beta(beta, (batch_size if per_sample else 1,), generator)
    cut_ratio = torch.sqrt(1.0 - lam)
    sides = torch.stack([(width * cut_ratio).long(), (height * cut_ratio).long()])
    partner, sides = to_device([random_partner(batch_size, generator), sides], images.device)
    source = partner if per_sample else partner[:1]
    boxes = peak_boxes(cams[source], sides[0], sides[1]).expand(batch_size, 4)
    row_in, col_in = box_masks(boxes, height, width)
    mixed = torch.where((row_in[:, :, None] & col_in[:, None, :])[:, None], images[partner], images)
    lam_b = (box_areas(boxes) / (height * width)).float()
    return MixedBatch(mixed, targets, targets[partner], 1.0 - lam_b, lam_b, partner, boxes, boxes)


class SaliencyMix(Mixer):
    """SaliencyMix on the model's CAMs (authors, ImageNet: prob 1, beta 1); ``cam_options``: ``CamForward``'s."""

    name = "saliencymix"

    def __init__(
        self, prob: float = 1.0, beta: float = 1.0, per_sample: bool = False, seed: int | None = None, **cam_options
    ):
        super().__init__(prob, per_sample, seed)
        self.cam_forward = CamForward(**cam_options)
        _check_positive("beta", beta)
        self.beta = float(beta)

    def mix_batch(self, images: Tensor, targets: Tensor, cams: Tensor | None, generator: torch.Generator) -> MixedBatch:
        return saliencymix(images, targets, cams, beta=self.beta, per_sample=self.per_sample, generator=generator)
