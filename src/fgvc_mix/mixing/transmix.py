"""TransMix (Chen et al., CVPR 2022, arXiv:2111.09833): CutMix labelled by a vision transformer's attention.

CutMix pastes a box of the partner into each image; TransMix then gives the partner's
label the share of the class token's attention (last block, averaged over heads) that
falls on the patches inside the box, in the forward of the *mixed* image: the label
follows what the classifying token looks at, not the pixel count. As in the authors'
code (github:Beckschen/TransMix, ``transmix.py``):

- a patch is inside the box when its nearest-neighbour sample of the pixel mask is
  (their ``nn.Upsample`` of the box mask to the patch grid: the patch's top-left pixel);
- the attention share is taken over the patches only (the class token's attention to
  itself is left out): ``inside / (inside + outside)``;
- the partner's weight averages it with CutMix's area share, ``lam_b = (area + attention) / 2``
  (``attention_share`` = 0.5; 1 uses the attention alone), and ``lam_a = 1 - lam_b``.

The attention exists only after the forward of the mixed batch, so the mixing happens
in two steps: ``TransMix`` mixes like CutMix, then its ``forward_mixed`` (the mixers' seam
after mixing) records the attention while it runs that forward and re-weights the labels
(``relabel``, ``transmix_labels``) before the loss.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from fgvc_mix.errors import UserError
from fgvc_mix.mixing.batch import MixedBatch
from fgvc_mix.mixing.cutmix import cutmix
from fgvc_mix.mixing.mixers import Mixer, _check_positive


def patch_box_masks(boxes: Tensor, grid: tuple[int, int], size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Row (B, h) and column (B, w) masks of the patches inside each pixel box [x1, y1, x2, y2).

    Patch row ``r`` samples pixel row ``r * H // h`` (nearest-neighbour resizing of the box
    mask to the patch grid, as the authors' ``nn.Upsample``); likewise for columns.
    """
    (rows, cols), (height, width) = grid, size
    sample_rows = torch.arange(rows, device=boxes.device) * height // rows
    sample_cols = torch.arange(cols, device=boxes.device) * width // cols
    row_in = (sample_rows >= boxes[:, 1:2]) & (sample_rows < boxes[:, 3:4])
    col_in = (sample_cols >= boxes[:, 0:1]) & (sample_cols < boxes[:, 2:3])
    return row_in, col_in


def transmix_weights(attention: Tensor, boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """The share of each image's patch attention (B, h, w) on the patches inside its box (B, 4) of an H x W image.

    Zero for an empty box; an attention map without mass (never, after a softmax) gives zero.
    """
    attention = attention.float()
    row_in, col_in = patch_box_masks(boxes.to(attention.device), tuple(attention.shape[1:]), size)
    inside = torch.einsum("bhw,bh,bw->b", attention, row_in.float(), col_in.float())
    total = attention.sum(dim=(1, 2))
    return torch.where(total > 0, inside / torch.where(total > 0, total, 1.0), 0.0)


def transmix_labels(mixed: MixedBatch, attention: Tensor, attention_share: float = 0.5) -> MixedBatch:
    """``mixed`` (a CutMix batch: ``box_a`` holds the partner's pixels) with TransMix's label weights.

    ``attention`` (B, h, w) is the class token's last-block attention to the patches of the
    mixed images, averaged over heads. ``lam_b = (1 - s) * area share + s * attention share``
    with ``s = attention_share`` (the authors: 0.5), ``lam_a = 1 - lam_b``. A batch that was
    not mixed (no boxes) is returned as it is.
    """
    if mixed.box_a is None:
        return mixed
    share = transmix_weights(attention, mixed.box_a, tuple(mixed.images.shape[-2:]))
    lam_b = (1.0 - attention_share) * mixed.lam_b.to(share.device) + attention_share * share
    return dataclasses.replace(mixed, lam_a=1.0 - lam_b, lam_b=lam_b)


class TransMix(Mixer):
    """TransMix: CutMix boxes (``beta``: their Beta concentration, the authors' 1), attention-weighted labels.

    Needs a class-token vision transformer (``model=timm model.name=deit_tiny_patch16_224``):
    ``forward_mixed`` records the class token's attention while it runs the mixed batch,
    then calls ``relabel``.
    """

    name = "transmix"

    def __init__(
        self,
        prob: float = 1.0,
        beta: float = 1.0,
        attention_share: float = 0.5,
        per_sample: bool = False,
        seed: int | None = None,
    ):
        super().__init__(prob, per_sample, seed)
        _check_positive("beta", beta)
        if not 0.0 <= attention_share <= 1.0:
            raise UserError(f"mix.attention_share must be in [0, 1] (0: CutMix's area labels), got {attention_share}")
        self.beta = float(beta)
        self.attention_share = float(attention_share)

    def mix_batch(self, images: Tensor, targets: Tensor, cams: Tensor | None, generator: torch.Generator) -> MixedBatch:
        return cutmix(images, targets, beta=self.beta, per_sample=self.per_sample, generator=generator)

    def check_model(self, model: nn.Module) -> None:
        """A CNN has no attention to read; a transformer without a class token refuses to record one."""
        recorder = getattr(model.backbone, "class_attention_recorder", None)
        if recorder is None:
            raise UserError(
                "mix=transmix re-weights labels by a vision transformer's class-token attention, and this model "
                "is a CNN. Use a class-token ViT (model=timm model.name=deit_tiny_patch16_224) or, with a CNN, "
                "mix=snapmix / mix=cutmix"
            )
        recorder()

    def forward_mixed(self, model: nn.Module, mixed: MixedBatch) -> tuple[dict[str, Tensor], MixedBatch]:
        """The forward of the mixed images under the backbone's attention recorder, then labels from its attention."""
        with model.backbone.class_attention_recorder() as recorder:
            outputs = model.forward_heads(mixed.images)
        return outputs, self.relabel(mixed, recorder.attention)

    def relabel(self, mixed: MixedBatch, class_attention: Tensor | None) -> MixedBatch:
        """``mixed`` with TransMix's label weights from ``class_attention`` (B, h, w); an unmixed batch as it is."""
        if mixed.box_a is None:  # not mixed this step (prob < 1)
            return mixed
        if class_attention is None:
            raise ValueError(
                "TransMix needs the class token's attention from the forward of the mixed images: record it with "
                "model.backbone.class_attention_recorder() around that forward and pass its .attention to relabel"
            )
        return transmix_labels(mixed, class_attention, self.attention_share)
