"""The mixing core against explicit, per-image reference computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import CONFIG_DIR
from helpers.cam_models import MapModel
from omegaconf import OmegaConf

from fgvc_mix.mixing import (
    CutMix,
    Mixup,
    NoMix,
    SnapMix,
    box_areas,
    class_activation_maps,
    cutmix,
    mixed_cross_entropy,
    mixup,
    no_mix,
    paste,
    random_boxes,
    snapmix,
    snapmix_weights,
)
from fgvc_mix.mixing.batch import MixedBatch


def reference_paste(images, partner, box_a, box_b):
    """The authors' slicing + F.interpolate, one image at a time."""
    out = images.clone()
    for i in range(images.shape[0]):
        xa1, ya1, xa2, ya2 = box_a[i].tolist()
        xb1, yb1, xb2, yb2 = box_b[i].tolist()
        if min(xa2 - xa1, ya2 - ya1, xb2 - xb1, yb2 - yb1) <= 0:
            continue
        patch = images[partner[i], :, yb1:yb2, xb1:xb2][None]
        out[i, :, ya1:ya2, xa1:xa2] = F.interpolate(
            patch, size=(ya2 - ya1, xa2 - xa1), mode="bilinear", align_corners=True
        )[0]
    return out


def random_box(gen, height, width, max_side=None):
    x1 = int(torch.randint(width, (), generator=gen))
    y1 = int(torch.randint(height, (), generator=gen))
    max_w = width - x1 if max_side is None else min(width - x1, max_side)
    max_h = height - y1 if max_side is None else min(height - y1, max_side)
    return [
        x1,
        y1,
        x1 + 1 + int(torch.randint(max_w, (), generator=gen)),
        y1 + 1 + int(torch.randint(max_h, (), generator=gen)),
    ]


def test_paste_matches_slice_and_interpolate_on_random_boxes():
    gen = torch.Generator().manual_seed(0)
    height, width, batch = 23, 31, 12
    images = torch.randn(batch, 3, height, width, generator=gen)
    for _ in range(5):
        box_a = torch.tensor([random_box(gen, height, width) for _ in range(batch)])
        box_b = torch.tensor([random_box(gen, height, width) for _ in range(batch)])
        partner = torch.randperm(batch, generator=gen)
        torch.testing.assert_close(
            paste(images, partner, box_a, box_b), reference_paste(images, partner, box_a, box_b), atol=1e-5, rtol=1e-5
        )


def test_paste_edge_cases():
    images = torch.randn(6, 2, 16, 20)
    partner = torch.tensor([1, 2, 3, 4, 5, 0])
    box_a = torch.tensor(
        [
            [0, 0, 20, 16],  # whole image
            [19, 15, 20, 16],  # 1-pixel box at the bottom-right corner
            [0, 0, 5, 16],  # full-height strip on the left border
            [4, 4, 4, 9],  # empty (zero width)
            [2, 3, 9, 8],  # equal size to its source below
            [10, 2, 13, 5],  # upscaled from a 1-pixel source
        ]
    )
    box_b = torch.tensor(
        [
            [3, 2, 11, 9],
            [0, 0, 7, 7],  # downscaled into one pixel
            [15, 0, 20, 16],
            [0, 0, 5, 5],
            [11, 8, 18, 13],
            [7, 7, 8, 8],
        ]
    )
    out = paste(images, partner, box_a, box_b)
    torch.testing.assert_close(out, reference_paste(images, partner, box_a, box_b), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[3], images[3])  # empty box changes nothing
    torch.testing.assert_close(out[4, :, 3:8, 2:9], images[5, :, 8:13, 11:18])  # equal sizes copy exactly
    torch.testing.assert_close(out[5, :, 2:5, 10:13], images[0, :, 7:8, 7:8].expand(2, 3, 3))
    outside = torch.ones(16, 20, dtype=torch.bool)
    outside[3:8, 2:9] = False
    torch.testing.assert_close(out[4][:, outside], images[4][:, outside])


def test_paste_shared_boxes_fast_path_equals_the_grid_sample_path():
    gen = torch.Generator().manual_seed(4)
    images = torch.randn(5, 3, 17, 23, generator=gen)
    partner = torch.tensor([2, 0, 3, 1])
    for box_a, box_b in [([3, 2, 15, 11], [0, 5, 9, 17]), ([0, 0, 23, 17], [4, 4, 5, 5]), ([2, 2, 2, 9], [0, 0, 4, 4])]:
        shared = paste(images[:4], partner, torch.tensor([box_a] * 4), torch.tensor([box_b] * 4))  # batch mode
        # a fifth image with other boxes makes the boxes differ: the per-image grid_sample path
        per_image = paste(
            images,
            torch.tensor([2, 0, 3, 1, 4]),
            torch.tensor([box_a] * 4 + [[0, 0, 1, 1]]),
            torch.tensor([box_b] * 4 + [[1, 1, 2, 2]]),
        )
        torch.testing.assert_close(shared, per_image[:4], atol=1e-5, rtol=1e-5)
        assert shared.data_ptr() != images.data_ptr()


def test_paste_empty_source_box_changes_nothing():
    images = torch.randn(2, 3, 8, 8)
    out = paste(images, torch.tensor([1, 0]), torch.tensor([[0, 0, 4, 4]] * 2), torch.tensor([[2, 2, 2, 6]] * 2))
    torch.testing.assert_close(out, images)


def test_snapmix_weights_against_explicit_sums():
    gen = torch.Generator().manual_seed(1)
    cams = torch.rand(5, 12, 14, generator=gen)
    cams = cams / cams.sum(dim=(1, 2), keepdim=True)
    box_a = torch.tensor([random_box(gen, 12, 14) for _ in range(5)])
    box_b = torch.tensor([random_box(gen, 12, 14) for _ in range(5)])
    box_a[2] = torch.tensor([3, 3, 3, 7])  # empty
    partner = torch.tensor([3, 0, 4, 1, 2])
    lam_a, lam_b = snapmix_weights(cams, partner, box_a, box_b)
    for i in range(5):
        xa1, ya1, xa2, ya2 = box_a[i].tolist()
        xb1, yb1, xb2, yb2 = box_b[i].tolist()
        assert lam_a[i] == pytest.approx(1 - cams[i, ya1:ya2, xa1:xa2].sum().item(), abs=1e-6)
        assert lam_b[i] == pytest.approx(cams[partner[i], yb1:yb2, xb1:xb2].sum().item(), abs=1e-6)
    assert lam_a[2] == pytest.approx(1.0)
    assert lam_a.dtype == lam_b.dtype == torch.float32


def test_snapmix_weights_uniform_and_concentrated_cams():
    uniform = torch.full((2, 10, 10), 1 / 100)
    box = torch.tensor([[0, 0, 5, 4], [2, 2, 10, 10]])
    lam_a, lam_b = snapmix_weights(uniform, torch.tensor([1, 0]), box, box)
    torch.testing.assert_close(lam_a, 1 - box_areas(box).float() / 100)
    torch.testing.assert_close(lam_b, box_areas(box).float() / 100)

    concentrated = torch.zeros(2, 10, 10)
    concentrated[0, 1, 1] = 1.0  # inside box 0
    concentrated[1, 0, 0] = 1.0  # outside box 1
    lam_a, lam_b = snapmix_weights(concentrated, torch.tensor([1, 0]), box, box)
    torch.testing.assert_close(lam_a, torch.tensor([0.0, 1.0]))
    # partner 1's mass (0, 0) lies in box 0; partner 0's mass (1, 1) lies outside box 1
    torch.testing.assert_close(lam_b, torch.tensor([1.0, 0.0]))


def test_class_activation_maps_matches_explicit_computation():
    gen = torch.Generator().manual_seed(2)
    features = torch.randn(4, 8, 5, 6, generator=gen)
    weight = torch.randn(10, 8, generator=gen)
    bias = torch.randn(10, generator=gen)
    targets = torch.tensor([3, 3, 0, 9])
    cams = class_activation_maps(features, weight, bias, targets, (20, 24))
    assert cams.shape == (4, 20, 24) and cams.dtype == torch.float32
    for i in range(4):
        raw = (features[i].relu() * weight[targets[i], :, None, None]).sum(0) + bias[targets[i]]
        up = F.interpolate(raw[None, None], size=(20, 24), mode="bilinear", align_corners=False)[0, 0]
        up = up - up.min()
        torch.testing.assert_close(cams[i], up / up.sum(), atol=1e-6, rtol=1e-5)
    assert (cams >= 0).all()
    torch.testing.assert_close(cams.sum(dim=(1, 2)), torch.ones(4))


def test_class_activation_maps_bf16_in_float32_out_and_degenerate_maps():
    features = torch.randn(3, 8, 4, 4).bfloat16()
    weight = torch.randn(5, 8).bfloat16()
    cams = class_activation_maps(features, weight, None, torch.tensor([0, 1, 2]), (16, 16))
    assert cams.dtype == torch.float32
    torch.testing.assert_close(cams.sum(dim=(1, 2)), torch.ones(3))

    features = torch.randn(3, 8, 4, 4)
    features[0] = -1.0  # dead ReLU: an all-zero map
    features[1] = 2.0  # a constant map
    features[2, 0, 0, 0] = float("nan")
    cams = class_activation_maps(features, torch.randn(5, 8), torch.randn(5), torch.tensor([0, 1, 2]), (16, 16))
    assert torch.isfinite(cams).all()
    torch.testing.assert_close(cams, torch.full((3, 16, 16), 1 / 256))


def test_random_boxes_follow_the_authors_rand_bbox():
    gen = torch.Generator().manual_seed(3)
    lam = torch.rand(2000, generator=gen, dtype=torch.float64)
    boxes = random_boxes(lam, 40, 50, torch.Generator().manual_seed(4))
    cut_w = (50 * torch.sqrt(1 - lam)).long()
    cut_h = (40 * torch.sqrt(1 - lam)).long()
    centre_x = (boxes[:, 0] + boxes[:, 2]) // 2
    unclipped = (boxes[:, 0] > 0) & (boxes[:, 2] < 50)
    assert ((boxes[:, 2] - boxes[:, 0])[unclipped] == 2 * (cut_w[unclipped] // 2)).all()
    assert ((boxes[:, 2] - boxes[:, 0]) <= cut_w).all() and ((boxes[:, 3] - boxes[:, 1]) <= cut_h).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 50).all() and (boxes[:, 3] <= 40).all()
    assert centre_x.min() == 0 and (boxes[:, 0] + cut_w // 2).max() == 49  # centres cover the whole width
    empty = random_boxes(torch.ones(4, dtype=torch.float64), 8, 8, gen)
    assert (box_areas(empty) == 0).all()  # lam = 1 gives an empty box


def test_cutmix_weight_is_clipped_area_fraction():
    images = torch.randn(7, 3, 20, 30)
    targets = torch.arange(7)
    for per_sample in (False, True):
        batch = cutmix(images, targets, beta=1.0, per_sample=per_sample, generator=torch.Generator().manual_seed(5))
        area = box_areas(batch.box_a).float() / 600
        torch.testing.assert_close(batch.lam_b, area)
        torch.testing.assert_close(batch.lam_a, 1 - area)
        torch.testing.assert_close(batch.images, reference_paste(images, batch.partner, batch.box_a, batch.box_a))
        assert torch.equal(batch.targets_b, targets[batch.partner])
        if per_sample:
            assert len({tuple(b) for b in batch.box_a.tolist()}) > 1


def test_box_mixers_call_their_box_concentration_beta():
    """SnapMix's name for the Beta concentration of the box lambdas, in every box mixer's YAML; ``alpha``
    (the core API's name for ``cutmix``) is the same draw."""
    for name in ("cutmix", "snapmix", "saliencymix", "transmix"):  # snapmix_scratch: snapmix.yaml, prob 0.5
        keys = OmegaConf.load(CONFIG_DIR / "mix" / f"{name}.yaml").keys()
        assert "beta" in keys and "alpha" not in keys, name
    images, targets = torch.randn(6, 3, 20, 30), torch.arange(6)
    by_beta = cutmix(images, targets, beta=2.0, per_sample=True, generator=torch.Generator().manual_seed(5))
    by_alpha = cutmix(images, targets, alpha=2.0, per_sample=True, generator=torch.Generator().manual_seed(5))
    assert torch.equal(by_beta.box_a, by_alpha.box_a) and torch.equal(by_beta.partner, by_alpha.partner)


def test_mixup_is_a_convex_combination():
    images = torch.randn(5, 3, 8, 8)
    targets = torch.tensor([0, 1, 2, 3, 4])
    for per_sample in (False, True):
        batch = mixup(images, targets, alpha=0.4, per_sample=per_sample, generator=torch.Generator().manual_seed(6))
        lam = batch.lam_a[:, None, None, None]
        torch.testing.assert_close(batch.images, lam * images + (1 - lam) * images[batch.partner])
        torch.testing.assert_close(batch.lam_a + batch.lam_b, torch.ones(5))
        assert ((batch.lam_a >= 0) & (batch.lam_a <= 1)).all()
        assert (batch.lam_a.unique().numel() > 1) == per_sample


def uniform_cams(batch, height, width):
    return torch.full((batch, height, width), 1.0 / (height * width))


@pytest.mark.parametrize("batch_size", [1, 2, 5, 9])
@pytest.mark.parametrize("per_sample", [False, True])
def test_snapmix_batch_sizes_and_consistency(batch_size, per_sample):
    images = torch.randn(batch_size, 3, 24, 24)
    targets = torch.arange(batch_size)
    cams = torch.rand(batch_size, 24, 24)
    cams = cams / cams.sum(dim=(1, 2), keepdim=True)
    batch = snapmix(images, targets, cams, beta=5.0, per_sample=per_sample, generator=torch.Generator().manual_seed(7))
    assert batch.images.shape == images.shape
    torch.testing.assert_close(batch.images, reference_paste(images, batch.partner, batch.box_a, batch.box_b))
    lam_a, lam_b = snapmix_weights(cams, batch.partner, batch.box_a, batch.box_b)
    different = targets != targets[batch.partner]
    torch.testing.assert_close(batch.lam_a[different], lam_a[different])
    torch.testing.assert_close(batch.lam_b[different], lam_b[different])
    assert torch.isfinite(batch.lam_a).all() and torch.isfinite(batch.lam_b).all()


def test_snapmix_same_label_pairs_sum_their_weights():
    images = torch.randn(6, 3, 16, 16)
    targets = torch.tensor([1, 1, 1, 2, 2, 2])
    cams = uniform_cams(6, 16, 16)
    gen_seed = 8
    summed = snapmix(images, targets, cams, generator=torch.Generator().manual_seed(gen_seed))
    kept = snapmix(images, targets, cams, same_label="keep", generator=torch.Generator().manual_seed(gen_seed))
    assert torch.equal(summed.partner, kept.partner)
    same = targets == targets[summed.partner]
    assert same.any()
    mixed = box_areas(summed.box_a) > 0
    expected = kept.lam_a + kept.lam_b
    torch.testing.assert_close(summed.lam_a[same & mixed], expected[same & mixed])
    torch.testing.assert_close(summed.lam_b[same & mixed], expected[same & mixed])
    torch.testing.assert_close(summed.lam_a[~same], kept.lam_a[~same])
    with pytest.raises(ValueError, match="same_label"):
        snapmix(images, targets, cams, same_label="average")


def test_snapmix_with_uniform_cams_gives_area_weights():
    images = torch.randn(8, 3, 32, 32)
    batch = snapmix(
        images,
        torch.arange(8),
        uniform_cams(8, 32, 32),
        per_sample=True,
        same_label="keep",
        generator=torch.Generator(),
    )
    torch.testing.assert_close(batch.lam_a, 1 - box_areas(batch.box_a).float() / 1024)
    torch.testing.assert_close(batch.lam_b, box_areas(batch.box_b).float() / 1024)


def test_snapmix_empty_box_means_no_mixing_for_that_image():
    images = torch.randn(4, 3, 16, 16)
    # beta tiny: lambdas near 0 or 1, so many boxes are empty (lam ~ 1) or whole-image
    for seed in range(20):
        batch = snapmix(
            images,
            torch.arange(4),
            uniform_cams(4, 16, 16),
            beta=0.05,
            per_sample=True,
            generator=torch.Generator().manual_seed(seed),
        )
        unmixed = box_areas(batch.box_a) == 0
        assert torch.equal(batch.images[unmixed], images[unmixed])
        assert (batch.lam_a[unmixed] == 1).all() and (batch.lam_b[unmixed] == 0).all()
        assert (box_areas(batch.box_b)[unmixed] == 0).all()


@pytest.mark.parametrize("name", ["snapmix", "cutmix", "mixup"])
def test_seeded_generator_reproduces_and_other_seed_differs(name):
    images = torch.randn(6, 3, 16, 16)
    targets = torch.arange(6)
    cams = torch.rand(6, 16, 16)
    cams = cams / cams.sum(dim=(1, 2), keepdim=True)

    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        if name == "snapmix":
            return snapmix(images, targets, cams, per_sample=True, generator=gen)
        return {"cutmix": cutmix, "mixup": mixup}[name](images, targets, per_sample=True, generator=gen)

    first, again, other = run(10), run(10), run(11)
    assert torch.equal(first.images, again.images) and torch.equal(first.lam_a, again.lam_a)
    assert not torch.equal(first.images, other.images)


def soft_target_cross_entropy(logits, batch, num_classes, smoothing):
    def smoothed(targets):
        one_hot = F.one_hot(targets, num_classes).float()
        return one_hot * (1 - smoothing) + smoothing / num_classes

    soft = batch.lam_a[:, None] * smoothed(batch.targets_a) + batch.lam_b[:, None] * smoothed(batch.targets_b)
    return -(soft * logits.log_softmax(-1)).sum(-1).mean()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_mixed_cross_entropy_equals_soft_target_cross_entropy(smoothing):
    gen = torch.Generator().manual_seed(12)
    logits = torch.randn(6, 7, generator=gen)
    batch = MixedBatch(
        torch.empty(6, 3, 1, 1),
        torch.randint(7, (6,), generator=gen),
        torch.randint(7, (6,), generator=gen),
        torch.rand(6, generator=gen),
        torch.rand(6, generator=gen),
    )
    loss = mixed_cross_entropy(logits, batch, label_smoothing=smoothing)
    torch.testing.assert_close(loss, soft_target_cross_entropy(logits, batch, 7, smoothing))
    plain = no_mix(torch.empty(6, 3, 1, 1), batch.targets_a)
    torch.testing.assert_close(
        mixed_cross_entropy(logits, plain, smoothing),
        F.cross_entropy(logits, batch.targets_a, label_smoothing=smoothing),
    )


def test_mixers_validate_options_and_respect_prob():
    with pytest.raises(ValueError, match=r"mix\.prob"):
        SnapMix(prob=1.5)
    with pytest.raises(ValueError, match=r"mix\.beta"):
        CutMix(beta=0)
    with pytest.raises(ValueError, match=r"mix\.alpha"):
        Mixup(alpha=-1)
    with pytest.raises(ValueError, match=r"class activation maps: call it as mixer\(images, targets, model\)"):
        SnapMix()(torch.randn(2, 3, 8, 8), torch.arange(2))
    assert SnapMix().needs_cams and not any(m().needs_cams for m in (CutMix, Mixup, NoMix))
    for mixer_class in (CutMix, Mixup, NoMix):  # no CAM forward, so no CAM options
        with pytest.raises(TypeError, match="cam_bn"):
            mixer_class(cam_bn="eval")

    images, targets = torch.randn(4, 3, 8, 8), torch.arange(4)
    model = MapModel()
    never = SnapMix(prob=0.0)
    assert torch.equal(never(images, targets, model).images, images) and not model.calls  # no CAM forward unmixed
    half = CutMix(prob=0.5, seed=0)
    mixed = [half(images, targets).box_a is not None for _ in range(200)]  # unmixed batches carry no boxes
    assert 60 < sum(mixed) < 140
    assert not NoMix()(images, targets).lam_b.any()


def test_mixer_reseed_differs_between_ranks():
    images, targets = torch.randn(8, 3, 16, 16), torch.arange(8)
    rank0, rank1, rank0_again = CutMix(), CutMix(), CutMix()
    rank0.reseed(42, rank=0)
    rank1.reseed(42, rank=1)
    rank0_again.reseed(42, rank=0)
    a, b, c = (m(images, targets, None) for m in (rank0, rank1, rank0_again))
    assert torch.equal(a.box_a, c.box_a)
    assert not (torch.equal(a.box_a, b.box_a) and torch.equal(a.partner, b.partner))


@pytest.mark.parametrize("step", [0, 7])
def test_ranks_take_the_same_mix_decisions_with_their_own_boxes(step):
    """Under DDP with SyncBatchNorm, a SnapMix CAM forward on one rank only would hang the others."""
    images, targets = torch.randn(4, 3, 16, 16), torch.arange(4)
    models = {0: MapModel(), 1: MapModel()}
    mixed = {0: [], 1: []}
    for rank in (0, 1):
        mixer = SnapMix(prob=0.5)
        mixer.reseed(42, rank=rank, step=step)
        for _ in range(40):
            mixed[rank].append(mixer(images, targets, models[rank]).box_a)
    decisions = {rank: [box is not None for box in boxes] for rank, boxes in mixed.items()}
    assert decisions[0] == decisions[1] and 5 < sum(decisions[0]) < 35
    assert models[0].calls == models[1].calls == sum(decisions[0])  # one CAM forward per mixed batch, on each rank
    pairs = [(a, b) for a, b in zip(mixed[0], mixed[1], strict=True) if a is not None]
    assert not all(torch.equal(a, b) for a, b in pairs)  # the boxes still differ between ranks


@pytest.mark.parametrize("mixer_class", [SnapMix, CutMix, Mixup])
def test_mixed_images_keep_the_channels_last_layout_and_values(mixer_class):
    images = torch.randn(4, 3, 16, 16)
    targets = torch.arange(4)
    uniform = MapModel()
    nchw = mixer_class(prob=1.0, seed=3)(images, targets, uniform).images
    nhwc = mixer_class(prob=1.0, seed=3)(images.contiguous(memory_format=torch.channels_last), targets, uniform)
    assert nhwc.images.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(nhwc.images, nchw)
