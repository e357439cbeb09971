"""Ground truth of mask and box mixes (``mix_shares``) against per-image references, and ``mixer_label_score``."""

from __future__ import annotations

import pytest
import torch

from fgvc_mix.mixing import MixedBatch, attentive_cutmix, cutmix, fmix, mixup, no_mix, resizemix
from fgvc_mix.mixing.label_noise import mix_shares, mixer_label_score, semantic_shares

B, H, W = 6, 16, 12


def sample(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, targets (all different) and random non-empty part masks."""
    source = torch.Generator().manual_seed(seed)
    masks = torch.rand(B, H, W, generator=source) < 0.2
    masks[:, 0, 0] = True
    return torch.randn(B, 3, H, W, generator=source), torch.arange(B), masks


def reference_shares(masks: torch.Tensor, mixed: MixedBatch) -> list[tuple[float, float]]:
    """Per image: the part pixels a keeps under 1 - mask, and b's part pixels the mix shows."""
    shares = []
    for i in range(B):
        parts_a = masks[i].float()
        parts_b = masks[int(mixed.partner[i])].float()
        shown = mixed.mask[i].float()
        kept = (parts_a * (1 - shown)).sum() / parts_a.sum()
        if mixed.box_b is None:
            visible = (parts_b * shown).sum() / parts_b.sum()
        else:
            x1, y1, x2, y2 = mixed.box_b[i].tolist()
            visible = parts_b[y1:y2, x1:x2].sum() / parts_b.sum()
        shares.append((float(kept), float(visible)))
    return shares


def assert_shares(masks: torch.Tensor, mixed: MixedBatch) -> None:
    share_a, share_b = mix_shares(masks, mixed)
    expected = reference_shares(masks, mixed)
    assert share_a.tolist() == pytest.approx([a for a, _ in expected], abs=1e-6)
    assert share_b.tolist() == pytest.approx([b for _, b in expected], abs=1e-6)


@pytest.mark.parametrize("per_sample", [False, True])
def test_fmix_mask_describes_the_images_and_its_shares_match_the_reference(per_sample):
    images, targets, masks = sample()
    mixed = fmix(images, targets, per_sample=per_sample, generator=torch.Generator().manual_seed(3))
    assert mixed.mask.shape == (B, H, W)
    assert torch.equal(mixed.images, torch.where(mixed.mask[:, None], images[mixed.partner], images))
    assert mixed.lam_b.tolist() == pytest.approx(mixed.mask.float().mean(dim=(1, 2)).tolist())
    assert_shares(masks, mixed)


def test_attentive_cutmix_mask_describes_the_images_and_its_shares_match_the_reference():
    images, targets, masks = sample()
    cams = torch.rand(B, H, W, generator=torch.Generator().manual_seed(1))
    cams = cams / cams.sum(dim=(1, 2), keepdim=True)
    mixed = attentive_cutmix(images, targets, cams, grid=4, top_k=3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(mixed.images, torch.where(mixed.mask[:, None], images[mixed.partner], images))
    assert_shares(masks, mixed)


def test_resizemix_shows_all_of_the_partners_parts_and_keeps_what_the_box_leaves():
    images, targets, masks = sample()
    mixed = resizemix(images, targets, scope=(0.3, 0.6), per_sample=True, generator=torch.Generator().manual_seed(3))
    assert mix_shares(masks, mixed)[1].tolist() == pytest.approx([1.0] * B)  # the whole partner, shrunk into the box
    assert bool((mixed.lam_b < 1.0).all())  # the area rule says otherwise
    for i, (x1, y1, x2, y2) in enumerate(mixed.box_a.tolist()):
        assert mixed.mask[i].sum() == (x2 - x1) * (y2 - y1) and mixed.mask[i, y1:y2, x1:x2].all()
    assert_shares(masks, mixed)


def test_float_mask_weighs_each_pixel_by_its_share_of_the_partner():
    _, _, masks = sample()
    shown = torch.rand(B, H, W, generator=torch.Generator().manual_seed(5))
    partner = torch.roll(torch.arange(B), 1)
    mixed = MixedBatch(
        torch.zeros(B, 3, H, W), torch.arange(B), partner, torch.ones(B), torch.zeros(B), partner, mask=shown
    )
    assert_shares(masks, mixed)


def test_box_mixes_without_a_mask_use_the_boxes_and_blends_have_no_ground_truth():
    images, targets, masks = sample()
    mixed = cutmix(images, targets, per_sample=True, generator=torch.Generator().manual_seed(3))
    expected = semantic_shares(masks, mixed.partner, mixed.box_a, mixed.box_b)
    assert [s.tolist() for s in mix_shares(masks, mixed)] == [s.tolist() for s in expected]
    assert mix_shares(masks, mixup(images, targets, generator=torch.Generator())) is None
    assert mix_shares(masks, no_mix(images, targets)) is None


def test_mixer_label_score_is_exact_for_cam_labels_from_perfect_cams_and_not_for_area_labels():
    _, _, masks = sample()
    images = torch.randn(4 * B, 3, H, W)
    masks, targets = masks.repeat(4, 1, 1), torch.arange(4 * B)
    perfect = masks.float() / masks.float().sum(dim=(1, 2), keepdim=True)  # targets index the images

    def fmix_with(cams: bool):
        generator = torch.Generator().manual_seed(0)

        def mix(x, y):
            return fmix(x, y, per_sample=True, cams=perfect[y] if cams else None, generator=generator)

        return mix

    exact = mixer_label_score(fmix_with(True), images, masks, targets, batch_size=B)
    area = mixer_label_score(fmix_with(False), images, masks, targets, batch_size=B)
    assert exact.num_pairs + exact.num_same_label == 4 * B
    assert exact.score.mae == pytest.approx(0.0, abs=1e-6) and exact.score.correlation == pytest.approx(1.0)
    assert area.score.mae > 0.01
    blend = mixer_label_score(lambda x, y: mixup(x, y), images, masks, targets, batch_size=B)
    assert blend is None
