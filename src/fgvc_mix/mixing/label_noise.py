"""Label noise, the tensor core: how far label weights are from what a mix shows.

Pure tensor code beside the mixing core (no Lightning): given part masks, the pairs and
boxes (or masks) of a mix, and the rules' weights, the ground-truth semantic shares and
each rule's error. ``fgvc_mix.evaluation.label_noise`` drives a model through it (the meter,
its callback, the ``python -m fgvc_mix.label_noise`` command); ``mixer_label_score`` scores any
mixer's own labels on its own mixes.

The ground truth of a mix, from the part masks (the class-defining pixels; each image's
mask normalised to sum to one, its "part mass"):

* ``share_a[i]``, what image i keeps: its part mass outside the region that shows the
  partner, ``1 - sum(parts_i * mask_i)`` (``mask_i`` the per-pixel share of the partner,
  ``MixedBatch.mask``; with only boxes, the indicator of ``box_a[i]``).
* ``share_b[i]``, what the mix shows of the partner j: the share of j's part mass that
  lands in the mix. Where the partner is copied in place (CutMix, SaliencyMix, FMix,
  Attentive CutMix: ``box_b`` is ``None`` or equals ``box_a``) that is ``sum(parts_j *
  mask_i)``; where ``box_b[i]`` of j is resized into ``box_a[i]`` (SnapMix, ResizeMix) it
  is j's part mass inside ``box_b[i]``, up to interpolation. ResizeMix's ``box_b`` is j's
  whole image: all of j's parts are visible, shrunk, so ``share_b = 1`` whatever the
  box's size (the premise of the method: scale is not counted). Its CAM rule therefore
  gives ``lam_b = 1`` exactly, and its area rule is judged by ``share_a`` and by how far
  the box's area falls below 1.

A blend (Mixup) has no geometry: every pixel shows both images, and with ``mask = 1 -
lam`` everywhere the truth would be its own ``lam`` by construction, so it is not scored;
neither is an unmixed batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from fgvc_mix.mixing.batch import MixedBatch
from fgvc_mix.mixing.boxes import box_areas
from fgvc_mix.mixing.snapmix import snapmix_weights


def part_mass(masks: Tensor, caller: str) -> Tensor:
    """Each part mask (B, H, W) as float32 normalised to sum to one; one clear error for an empty mask."""
    masks = masks.float()
    counts = masks.sum(dim=(1, 2), keepdim=True)
    if bool((counts == 0).any()):
        empty = torch.nonzero(counts.flatten() == 0).flatten().tolist()
        raise ValueError(f"{caller}: the part masks of images {empty[:10]} are empty; no share is defined")
    return masks / counts


def semantic_shares(masks: Tensor, partner: Tensor, box_a: Tensor, box_b: Tensor) -> tuple[Tensor, Tensor]:
    """Ground-truth ``(share_a, share_b)`` of each mix from the part masks (B, H, W).

    ``share_a[i]`` is the fraction of ``masks[i]`` outside ``box_a[i]``, ``share_b[i]``
    the fraction of ``masks[partner[i]]`` inside ``box_b[i]``: SnapMix's weights with
    each mask, divided by its pixel count, as the CAM.
    """
    return snapmix_weights(part_mass(masks, "semantic_shares"), partner, box_a, box_b)


def mix_shares(masks: Tensor, mixed: MixedBatch) -> tuple[Tensor, Tensor] | None:
    """Ground-truth ``(share_a, share_b)`` of ``mixed`` from the part masks (B, H, W) of its source images.

    Uses ``mixed.mask`` where the mixer set one, else its boxes (module docstring); ``None``
    for a mix without geometry (a blend, or no mixing).
    """
    if mixed.partner is None or (mixed.mask is None and mixed.box_a is None):
        return None
    parts = part_mass(masks, "mix_shares")
    partner = mixed.partner.to(masks.device)
    if mixed.mask is None:
        return snapmix_weights(parts, partner, mixed.box_a.to(masks.device), mixed.box_b.to(masks.device))
    shown = mixed.mask.to(masks.device, torch.float32).expand_as(parts)  # each pixel's share of the partner
    share_a = 1.0 - (parts * shown).sum(dim=(1, 2))
    if mixed.box_b is None:  # the partner's pixels at the same place
        return share_a, (parts[partner] * shown).sum(dim=(1, 2))
    box_b = mixed.box_b.to(masks.device)  # the partner's region resized into the mask's box
    return share_a, snapmix_weights(parts, partner, box_b, box_b)[1]


def area_weights(box_a: Tensor, box_b: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """CutMix's rule for given boxes: ``lam_a = 1 - area(box_a) / HW``, ``lam_b = area(box_b) / HW``.

    With ``box_b == box_a`` these are exactly the weights ``cutmix`` assigns.
    """
    image_area = height * width
    return 1.0 - box_areas(box_a).float() / image_area, box_areas(box_b).float() / image_area


@dataclass(frozen=True)
class RuleScore:
    """One labelling rule against the ground truth: MAE over both weights, Pearson correlation."""

    mae: float
    correlation: float


@dataclass(frozen=True)
class LabelNoise:
    """Both labelling rules scored on the same pairs and boxes."""

    cutmix: RuleScore
    snapmix: RuleScore
    num_pairs: int  # pairs scored (their two images have different labels)
    num_same_label: int  # pairs left out because both images have the same label
    variants: dict[str, RuleScore] = field(default_factory=dict)  # SnapMix's rule with cheaper CAMs, by name

    @property
    def mae_ratio(self) -> float:
        """SnapMix's MAE over CutMix's: the paper's claim is that it is well below one on fine-grained data."""
        return self.snapmix.mae / self.cutmix.mae if self.cutmix.mae > 0 else float("nan")

    def table(self) -> str:
        """A plain-text table: rule, MAE, correlation, then the MAE ratio."""
        rows = {"cutmix": self.cutmix, "snapmix": self.snapmix}
        rows.update({f"snapmix {name}": score for name, score in self.variants.items()})
        width = max(len(name) for name in rows)
        lines = [f"{'rule':<{width}} {'MAE':>7} {'corr':>7}"]
        for name, score in rows.items():
            lines.append(f"{name:<{width}} {score.mae:>7.4f} {score.correlation:>7.3f}")
        lines.append(f"SnapMix MAE / CutMix MAE = {self.mae_ratio:.3f}")
        lines.append(f"({self.num_pairs} pairs with different labels; {self.num_same_label} same-label pairs left out)")
        return "\n".join(lines)


def _score(weights: tuple[Tensor, Tensor], shares: tuple[Tensor, Tensor], keep: Tensor) -> RuleScore:
    predicted = torch.cat([w[keep] for w in weights]).double()
    truth = torch.cat([s[keep] for s in shares]).double()
    if predicted.numel() == 0:
        return RuleScore(float("nan"), float("nan"))
    correlation = torch.corrcoef(torch.stack([predicted, truth]))[0, 1]
    return RuleScore(float((predicted - truth).abs().mean()), float(correlation))


@dataclass(frozen=True)
class MixerScore:
    """A mixer's own label weights against the ground truth of its own mixes."""

    score: RuleScore
    num_pairs: int  # pairs scored (different labels)
    num_same_label: int  # pairs left out: both images have one label


def mixer_label_score(
    mix: Callable[[Tensor, Tensor], MixedBatch], images: Tensor, masks: Tensor, targets: Tensor, batch_size: int
) -> MixerScore | None:
    """Score ``mix``'s label weights on ``images`` split into batches of ``batch_size``, as training mixes them.

    ``mix(images, targets)`` mixes one batch for certain (a mixer's ``mix`` with its CAMs
    bound); each batch's ground truth comes from ``masks`` (B, H, W part masks) through
    ``mix_shares``. Pairs with one label are left out, as in ``label_noise``. ``None`` when the
    mixer's batches have no geometry to score (``mix_shares``).
    """
    weights: list[Tensor] = []
    truth: list[Tensor] = []
    keep: list[Tensor] = []
    for x, m, y in zip(images.split(batch_size), masks.split(batch_size), targets.split(batch_size), strict=True):
        mixed = mix(x, y)
        shares = mix_shares(m, mixed)
        if shares is None:
            return None
        weights.append(torch.stack([mixed.lam_a, mixed.lam_b]).float().cpu())
        truth.append(torch.stack(shares).cpu())
        keep.append((mixed.targets_a != mixed.targets_b).cpu())
    kept = torch.cat(keep)
    weight, share = torch.cat(weights, dim=1), torch.cat(truth, dim=1)
    score = _score((weight[0], weight[1]), (share[0], share[1]), kept)
    return MixerScore(score, int(kept.sum()), int((~kept).sum()))


def label_noise(
    cams: Tensor,
    masks: Tensor,
    targets: Tensor,
    partner: Tensor,
    box_a: Tensor,
    box_b: Tensor,
    variant_cams: dict[str, Tensor] | None = None,
) -> LabelNoise:
    """Score CutMix's and SnapMix's weights for the given pairs against the part-mask shares.

    ``cams`` are normalised target-class CAMs (B, H, W), ``masks`` the part masks
    (B, H, W); ``variant_cams`` other CAMs of the same images, each scored with SnapMix's
    rule. Scores are NaN when no pair is left, a correlation also when weights are constant.
    """
    height, width = masks.shape[-2:]
    cams, masks, targets = cams.cpu(), masks.cpu(), targets.cpu()
    partner, box_a, box_b = partner.cpu(), box_a.cpu(), box_b.cpu()
    shares = semantic_shares(masks, partner, box_a, box_b)
    keep = targets != targets[partner]
    return LabelNoise(
        cutmix=_score(area_weights(box_a, box_b, height, width), shares, keep),
        snapmix=_score(snapmix_weights(cams, partner, box_a, box_b), shares, keep),
        num_pairs=int(keep.sum()),
        num_same_label=int((~keep).sum()),
        variants={
            name: _score(snapmix_weights(other.cpu(), partner, box_a, box_b), shares, keep)
            for name, other in (variant_cams or {}).items()
        },
    )
