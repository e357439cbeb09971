"""Scoring mixing rules against ground truth: how far label weights are from what a mix shows.

Pure tensor code beside the mixing core (no Lightning): given part masks, the pairs and
boxes of a mix, and the rules' weights, the ground-truth semantic shares and each rule's
error. ``fgvc_mix.label_noise`` drives a model through it (the meter, its callback, its CLI).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from fgvc_mix.mixing.boxes import box_areas
from fgvc_mix.mixing.snapmix import snapmix_weights


def semantic_shares(masks: Tensor, partner: Tensor, box_a: Tensor, box_b: Tensor) -> tuple[Tensor, Tensor]:
    """Ground-truth ``(share_a, share_b)`` of each mix from the part masks (B, H, W).

    ``share_a[i]`` is the fraction of ``masks[i]`` outside ``box_a[i]``, ``share_b[i]``
    the fraction of ``masks[partner[i]]`` inside ``box_b[i]``: SnapMix's weights with
    each mask, divided by its pixel count, as the CAM.
    """
    masks = masks.float()
    counts = masks.sum(dim=(1, 2), keepdim=True)
    if bool((counts == 0).any()):
        empty = torch.nonzero(counts.flatten() == 0).flatten().tolist()
        raise ValueError(f"semantic_shares: the part masks of images {empty[:10]} are empty; no share is defined")
    return snapmix_weights(masks / counts, partner, box_a, box_b)


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
