"""ResizeMix, FMix, SaliencyMix and Attentive CutMix against plain per-image references, and the mixing contract.

Each reference replays the mixer's draws from the same seed (the generator's stream is
part of the contract: same seed, same batch), then builds every image and its weights
in a Python loop, the authors' way: slices, ``F.interpolate``, ``argsort``, ``argmax``.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.cam_models import MapModel

from fgvc_mix.mixing import (
    AttentiveCutMix,
    FMix,
    ResizeMix,
    SaliencyMix,
    attentive_cutmix,
    fmix,
    resizemix,
    saliencymix,
)
from fgvc_mix.mixing.boxes import sample_beta
from fgvc_mix.mixing.fmix import low_frequency_noise
from fgvc_mix.mixing.resizemix import resize_boxes
from fgvc_mix.train import build
from fgvc_mix.training.mix_options import cnn_mix_options

B, H, W = 6, 24, 20
SEED = 7


def batch(batch_size: int = B, height: int = H, width: int = W) -> tuple[torch.Tensor, ...]:
    source = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, height, width, generator=source)
    targets = torch.arange(batch_size) % 4
    cams = torch.rand(batch_size, height, width, generator=source) ** 4  # peaked, no ties
    return images, targets, cams / cams.sum(dim=(1, 2), keepdim=True)


def generator(seed: int = SEED) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clipped_box(cx: int, cy: int, cut_w: int, cut_h: int) -> tuple[int, int, int, int]:
    """The authors' ``rand_bbox`` arithmetic around a given centre."""
    clip = lambda v, n: min(max(v, 0), n)  # noqa: E731
    return clip(cx - cut_w // 2, W), clip(cy - cut_h // 2, H), clip(cx + cut_w // 2, W), clip(cy + cut_h // 2, H)


def shifted_box(cx: int, cy: int, cut_w: int, cut_h: int) -> tuple[int, int, int, int]:
    """The ResizeMix authors' ``getbox_new``: centred, then shifted back inside the image (not clipped)."""
    x1 = min(max(cx - cut_w // 2, 0), W)
    x2 = min(max(x1 + cut_w, 0), W)
    x1 = min(max(x2 - cut_w, 0), W)
    y1 = min(max(cy - cut_h // 2, 0), H)
    y2 = min(max(y1 + cut_h, 0), H)
    y1 = min(max(y2 - cut_h, 0), H)
    return x1, y1, x2, y2


# --------------------------------------------------------------------------- per-image references


def reference_resizemix(images, targets, cams, per_sample, scope=(0.1, 0.8)):
    g = generator()
    n = B if per_sample else 1
    tau = scope[0] + (scope[1] - scope[0]) * torch.rand(n, generator=g, dtype=torch.float64)
    cx, cy = torch.randint(W, (n,), generator=g), torch.randint(H, (n,), generator=g)
    partner = torch.randperm(B, generator=g)
    mixed, lam_a, lam_b = images.clone(), torch.ones(B), torch.zeros(B)
    for i in range(B):
        k, p = (i if per_sample else 0), int(partner[i])
        cut_w, cut_h = int(W * float(tau[k])), int(H * float(tau[k]))  # F.interpolate(scale_factor=tau)'s size
        x1, y1, x2, y2 = shifted_box(int(cx[k]), int(cy[k]), cut_w, cut_h)
        if x2 > x1 and y2 > y1:
            mixed[i, :, y1:y2, x1:x2] = F.interpolate(
                images[p][None], (y2 - y1, x2 - x1), mode="bilinear", align_corners=True
            )[0]
            if cams is None:
                lam_b[i] = (x2 - x1) * (y2 - y1) / (H * W)
                lam_a[i] = 1 - lam_b[i]
            else:
                lam_a[i] = 1 - cams[i, y1:y2, x1:x2].sum()
                lam_b[i] = cams[p].sum()
    return mixed, targets[partner], lam_a, lam_b


def reference_fmix_mask(lam: float, parts: torch.Tensor, coin: float) -> np.ndarray:
    """The authors' ``make_low_freq_image`` + ``binarise_mask`` for one image, over the full 2-D spectrum."""
    fy = np.fft.fftfreq(H)[:, None]
    fx = np.fft.fftfreq(W)[: W // 2 + 1]
    scale = 1.0 / np.maximum(np.sqrt(fx * fx + fy * fy), 1.0 / max(W, H)) ** 3.0
    spectrum = (parts[0].numpy() + 1j * parts[1].numpy()) * scale
    noise = np.fft.irfftn(spectrum, (H, W), axes=(0, 1)).reshape(-1)
    keep = np.zeros(H * W, dtype=bool)
    num = math.ceil(lam * H * W) if coin > 0.5 else math.floor(lam * H * W)
    keep[noise.argsort()[::-1][:num]] = True
    return ~keep.reshape(H, W)  # where the partner shows


def reference_fmix(images, targets, cams, per_sample):
    g = generator()
    n = B if per_sample else 1
    lam = sample_beta(1.0, (n,), g)
    parts = torch.randn(n, 2, H, W // 2 + 1, generator=g, dtype=torch.float64)
    coins = torch.rand(n, generator=g, dtype=torch.float64)
    partner = torch.randperm(B, generator=g)
    mixed, lam_a, lam_b = images.clone(), torch.ones(B), torch.zeros(B)
    for i in range(B):
        k, p = (i if per_sample else 0), int(partner[i])
        mask = torch.from_numpy(reference_fmix_mask(float(lam[k]), parts[k], float(coins[k])))
        mixed[i][:, mask] = images[p][:, mask]
        if cams is None:
            lam_b[i] = mask.float().mean()
            lam_a[i] = 1 - lam_b[i]
        else:
            lam_a[i] = 1 - cams[i][mask].sum()
            lam_b[i] = cams[p][mask].sum()
    return mixed, targets[partner], lam_a, lam_b


def reference_saliencymix(images, targets, cams, per_sample):
    g = generator()
    lam = sample_beta(1.0, (B if per_sample else 1,), g)
    partner = torch.randperm(B, generator=g)
    mixed, lam_a, lam_b = images.clone(), torch.ones(B), torch.zeros(B)
    for i in range(B):
        k, p = (i if per_sample else 0), int(partner[i])
        source = p if per_sample else int(partner[0])
        cut = math.sqrt(1.0 - float(lam[k]))
        cy, cx = np.unravel_index(int(np.argmax(cams[source].numpy())), (H, W))
        x1, y1, x2, y2 = clipped_box(int(cx), int(cy), int(W * cut), int(H * cut))
        mixed[i, :, y1:y2, x1:x2] = images[p, :, y1:y2, x1:x2]
        lam_b[i] = max(x2 - x1, 0) * max(y2 - y1, 0) / (H * W)
        lam_a[i] = 1 - lam_b[i]
    return mixed, targets[partner], lam_a, lam_b


def reference_attentive_cutmix(images, targets, cams, per_sample, grid=4, top_k=3):
    partner = torch.randperm(B, generator=generator())
    mixed, lam_a, lam_b = images.clone(), torch.ones(B), torch.zeros(B)
    for i in range(B):
        p = int(partner[i])
        cells = {}
        for r in range(grid):
            for c in range(grid):
                rows = [y for y in range(H) if y * grid // H == r]
                cols = [x for x in range(W) if x * grid // W == c]
                cells[(r, c)] = (float(cams[p][rows][:, cols].sum()), rows, cols)
        mask = torch.zeros(H, W, dtype=torch.bool)
        for _, rows, cols in sorted(cells.values(), key=lambda cell: -cell[0])[:top_k]:
            mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
        mixed[i][:, mask] = images[p][:, mask]
        lam_b[i] = mask.float().mean()
        lam_a[i] = 1 - lam_b[i]
    return mixed, targets[partner], lam_a, lam_b


CASES = {  # name: (function of (images, targets, cams, per_sample, generator), its reference)
    "resizemix": (
        lambda x, y, c, ps, g: resizemix(x, y, per_sample=ps, generator=g),
        lambda x, y, c, ps: reference_resizemix(x, y, None, ps),
    ),
    "resizemix_cam": (lambda x, y, c, ps, g: resizemix(x, y, per_sample=ps, cams=c, generator=g), reference_resizemix),
    "fmix": (
        lambda x, y, c, ps, g: fmix(x, y, per_sample=ps, generator=g),
        lambda x, y, c, ps: reference_fmix(x, y, None, ps),
    ),
    "fmix_cam": (lambda x, y, c, ps, g: fmix(x, y, per_sample=ps, cams=c, generator=g), reference_fmix),
    "saliencymix": (lambda x, y, c, ps, g: saliencymix(x, y, c, per_sample=ps, generator=g), reference_saliencymix),
    "attentive_cutmix": (
        lambda x, y, c, ps, g: attentive_cutmix(x, y, c, grid=4, top_k=3, generator=g),
        reference_attentive_cutmix,
    ),
}


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("name", CASES)
def test_mixer_matches_its_per_image_reference(name, per_sample):
    function, reference = CASES[name]
    images, targets, cams = batch()
    mixed = function(images, targets, cams, per_sample, generator())
    ref_images, ref_targets_b, ref_lam_a, ref_lam_b = reference(images, targets, cams, per_sample)
    torch.testing.assert_close(mixed.images, ref_images, atol=1e-5, rtol=0)
    assert torch.equal(mixed.targets_a, targets) and torch.equal(mixed.targets_b, ref_targets_b)
    torch.testing.assert_close(mixed.lam_a, ref_lam_a, atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed.lam_b, ref_lam_b, atol=1e-5, rtol=0)
    assert mixed.lam_a.dtype == mixed.lam_b.dtype == torch.float32
    assert not torch.equal(mixed.images, images)  # the seed mixes something: the comparison is not vacuous


# --------------------------------------------------------------------------- the contract

MIXERS = {  # name: a Mixer from keyword options
    "resizemix": lambda **kw: ResizeMix(**kw),
    "resizemix_cam": lambda **kw: ResizeMix(labels="cam", **kw),
    "fmix": lambda **kw: FMix(**kw),
    "fmix_cam": lambda **kw: FMix(labels="cam", **kw),
    "saliencymix": lambda **kw: SaliencyMix(**kw),
    "attentive_cutmix": lambda **kw: AttentiveCutMix(**kw),
}


# A stand-in model whose CAMs peak where the images do.
cam_model = MapModel(lambda images: images.float().abs().mean(dim=1) ** 4)


@pytest.mark.parametrize("name", MIXERS)
def test_prob_decides_how_many_batches_mix(name):
    images, targets, _ = batch()
    never = MIXERS[name](prob=0.0, seed=SEED)
    unmixed = never(images, targets, cam_model)
    assert unmixed.images is images and torch.equal(unmixed.lam_a, torch.ones(B))
    half = MIXERS[name](prob=0.5, seed=SEED)
    mixed = sum(not torch.equal(half(images, targets, cam_model).lam_b, torch.zeros(B)) for _ in range(100))
    assert 35 <= mixed <= 65


@pytest.mark.parametrize("name", ["resizemix", "resizemix_cam", "fmix", "fmix_cam", "saliencymix"])
def test_per_sample_gives_each_image_its_own_region(name):
    images, targets, _ = batch()
    # A constant CAM gives every partner the same peak: any difference between images comes from the draws.
    flat = MapModel()
    shared = MIXERS[name](per_sample=False, seed=SEED)(images, targets, flat)
    own = MIXERS[name](per_sample=True, seed=SEED)(images, targets, flat)
    area = lambda m: (m.images != images).any(dim=1).float().mean(dim=(1, 2))  # noqa: E731
    changed = own.partner != torch.arange(B)
    assert len(set(own.lam_a.tolist())) > 1 and len(set(area(own)[changed].tolist())) > 1
    if name.endswith("_cam"):
        return  # CAM weights differ per image even for one shared region
    assert len(set(shared.lam_a.tolist())) == 1


def test_attentive_cutmix_cells_are_each_partners_own():
    images, targets, cams = batch()
    mixed = attentive_cutmix(images, targets, cams, grid=4, top_k=3, generator=generator())
    regions = {tuple((mixed.images[i] != images[i]).any(dim=0).flatten().tolist()) for i in range(B)}
    assert len(regions) > 2


@pytest.mark.parametrize("name", MIXERS)
def test_same_seed_same_batch_other_seed_other_batch(name):
    images, targets, _ = batch()
    first, again, other = (
        MIXERS[name](per_sample=True, seed=s)(images, targets, cam_model) for s in (SEED, SEED, SEED + 1)
    )
    for field in ("images", "targets_b", "lam_a", "lam_b", "partner"):
        assert torch.equal(getattr(first, field), getattr(again, field)), field
    assert not torch.equal(first.images, other.images)


@pytest.mark.parametrize("name", ["fmix", "fmix_cam", "saliencymix", "attentive_cutmix"])
def test_batch_of_one_mixes_with_itself(name):
    images, targets, _ = batch(1)
    mixed = MIXERS[name](seed=SEED)(images, targets, cam_model)
    assert torch.equal(mixed.partner, torch.zeros(1, dtype=torch.long)) and torch.equal(mixed.targets_b, targets)
    torch.testing.assert_close(mixed.images, images)  # its own pixels pasted into the same place
    assert mixed.lam_a.shape == mixed.lam_b.shape == (1,)


@pytest.mark.parametrize("labels", ["area", "cam"])
def test_batch_of_one_resizemix_shows_the_image_shrunk_into_itself(labels):
    images, targets, _ = batch(1)
    mixed = ResizeMix(scope=(0.5, 0.5), labels=labels, seed=SEED)(images, targets, cam_model)
    assert torch.equal(mixed.partner, torch.zeros(1, dtype=torch.long)) and mixed.lam_b.shape == (1,)
    x1, y1, x2, y2 = mixed.box_a[0].tolist()
    shrunk = F.interpolate(images, (y2 - y1, x2 - x1), mode="bilinear", align_corners=True)
    torch.testing.assert_close(mixed.images[..., y1:y2, x1:x2], shrunk, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MIXERS)
def test_an_empty_region_means_no_mixing(name, monkeypatch):
    images, targets, _ = batch()
    options = {}
    if name.startswith("resizemix"):
        options["scope"] = (0.0, 0.0)
    elif name.startswith("attentive"):
        options["top_k"] = 0
    else:  # lam = 1: FMix keeps every pixel, SaliencyMix's box has side 0
        module = "fmix" if name.startswith("fmix") else "saliencymix"
        ones = lambda c, shape, g: torch.ones(shape, dtype=torch.float64)  # noqa: E731
        monkeypatch.setattr(sys.modules[f"fgvc_mix.mixing.{module}"], "sample_beta", ones)
    mixed = MIXERS[name](per_sample=True, seed=SEED, **options)(images, targets, cam_model)
    assert torch.equal(mixed.images, images)
    assert torch.equal(mixed.lam_a, torch.ones(B)) and torch.equal(mixed.lam_b, torch.zeros(B))


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("name", CASES)
def test_mixing_runs_on_another_device_without_reading_it_back(name, per_sample):
    """On ``meta`` any host read of a device value (``.item()``, ``.cpu()``, ``bool()``) raises."""
    images, targets, cams = (t.to("meta") for t in batch())
    mixed = CASES[name][0](images, targets, cams, per_sample, generator())
    assert mixed.images.device.type == mixed.lam_a.device.type == mixed.lam_b.device.type == "meta"
    assert mixed.images.shape == images.shape and mixed.lam_b.shape == (B,)


def test_resizemix_cam_labels_give_the_whole_partner_its_full_weight():
    images, targets, cams = batch()
    mixed = resizemix(images, targets, per_sample=True, cams=cams, generator=generator())
    assert torch.allclose(mixed.lam_b, torch.ones(B)) and bool((mixed.lam_a < 1).all())
    assert torch.equal(mixed.box_b, torch.tensor([[0, 0, W, H]]).expand(B, 4))


def test_resizemix_boxes_are_shifted_inside_never_clipped():
    """The authors keep the shrunk partner whole at the border; a clipped box (OpenMixup's) would squash it."""
    boxes = resize_boxes(400, H, W, (0.5, 0.5), True, generator())
    assert torch.equal(boxes[:, 2] - boxes[:, 0], torch.full((400,), W // 2))
    assert torch.equal(boxes[:, 3] - boxes[:, 1], torch.full((400,), H // 2))
    assert int(boxes[:, 0].min()) == 0 and int(boxes[:, 2].max()) == W  # the border is reached


def test_fmix_noise_is_low_frequency_along_both_axes():
    """The authors' code indexes its spectrum so that two horizontal frequencies survive; ours keeps the 2-D law."""
    noise = low_frequency_noise(64, 32, 32, 3.0, generator())
    power = torch.fft.rfft2(noise).abs().pow(2).mean(dim=0)
    assert power[0, 4] > 1e-6 * power[0, 1] and power[4, 0] > 1e-6 * power[1, 0]  # both axes carry frequencies > 1
    assert power[0, 1] > 50 * power[0, 8] and power[1, 0] > 50 * power[8, 0]  # and they decay as 1 / f ** 3


@pytest.mark.parametrize("name", ["saliencymix", "attentive_cutmix", "resizemix_cam", "fmix_cam"])
def test_cam_mixers_say_they_need_cams_and_refuse_to_run_without(name):
    mixer = MIXERS[name]()
    assert mixer.needs_cams
    with pytest.raises(ValueError, match="needs class activation maps"):
        mixer.mix(*batch()[:2], None)


def test_area_mixers_do_not_ask_for_cams_nor_take_cam_options():
    model = MapModel()
    for mixer_class in (ResizeMix, FMix):
        mixer = mixer_class()
        assert not mixer.needs_cams
        mixer.mix(*batch()[:2], model)
        with pytest.raises(ValueError, match=r"mix\.cam_bn configures the CAM forward, which only mix\.labels=cam"):
            mixer_class(cam_bn="eval")
        assert mixer_class(labels="cam", cam_bn="eval").cam_forward.bn == "eval"
    assert model.calls == 0


@pytest.mark.parametrize(
    ("make", "option"),
    [
        (lambda: ResizeMix(labels="boxes"), r"mix\.labels"),
        (lambda: FMix(labels="mass"), r"mix\.labels"),
        (lambda: ResizeMix(scope=(0.8, 0.1)), r"mix\.scope"),
        (lambda: ResizeMix(scope=0.5), r"mix\.scope"),
        (lambda: FMix(alpha=0.0), r"mix\.alpha"),
        (lambda: FMix(decay_power=0.0), r"mix\.decay_power"),
        (lambda: SaliencyMix(beta=-1.0), r"mix\.beta"),
        (lambda: AttentiveCutMix(grid=0), r"mix\.grid"),
        (lambda: AttentiveCutMix(grid=3, top_k=10), r"mix\.top_k"),
    ],
)
def test_bad_options_name_the_option(make, option):
    with pytest.raises(ValueError, match=option):
        make()


# --------------------------------------------------------------------------- through the training entry point

MIXING_OPTIONS = [mix for mix in cnn_mix_options() if mix != "none"]  # each trains in test_training.py


@pytest.mark.parametrize("mix", MIXING_OPTIONS)
def test_real_cams_reach_the_mixer_from_the_config(mix, tiny_config):
    cfg = tiny_config(f"mix={mix}", "mix.prob=1.0", "logger=[]", "callbacks=[]")
    module, datamodule, _ = build(cfg)
    assert mix.startswith(module.mixer.name) and module.mixer.needs_cams == ("cam_bn" in cfg.mix)
    datamodule.setup("fit")
    images, targets = next(iter(datamodule.train_dataloader()))
    mixed = module.mixer(images, targets, module.model)
    assert mixed.images.shape == images.shape and bool((mixed.lam_b > 0).any())


@pytest.mark.parametrize("name", CASES)
def test_mixed_images_keep_the_channels_last_layout(name):
    images, targets, cams = batch()
    images = images.contiguous(memory_format=torch.channels_last)
    mixed = CASES[name][0](images, targets, cams, True, generator())
    assert mixed.images.is_contiguous(memory_format=torch.channels_last)
