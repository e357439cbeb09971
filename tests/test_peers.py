"""Peer check: our ``cutmix`` and ``mixup`` against timm's ``Mixup`` and torchvision's v2 ``CutMix`` / ``MixUp``.

Each peer is run as it is (its own random draws); a spy records the lambda and box
it drew, and our function is run with exactly those draws (its box / lambda / partner
helpers replaced by the recorded values). Images must then agree (CutMix's exactly,
Mixup's to 1e-6) and our two weighted labels, written as a soft target
``lam_a * onehot(a) + lam_b * onehot(b)``, must equal the peer's target. Where the
semantics differ (timm's label smoothing, flip pairing and box rule; torchvision's roll
pairing) see docs/peers.md.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from torchvision.transforms import v2

from fgvc_mix.mixing import MixedBatch, cutmix, mixed_cross_entropy, mixup, random_boxes

# The modules, not the functions of the same names that fgvc_mix.mixing re-exports.
cutmix_module = importlib.import_module("fgvc_mix.mixing.cutmix")
mixup_module = importlib.import_module("fgvc_mix.mixing.mixup")

BATCH, CLASSES, HEIGHT, WIDTH = 8, 5, 24, 32
FLIP = torch.arange(BATCH - 1, -1, -1)  # timm: image i is mixed with image B - 1 - i
ROLL = (torch.arange(BATCH) - 1) % BATCH  # torchvision: image i is mixed with image i - 1


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(BATCH, 3, HEIGHT, WIDTH, generator=generator), torch.randint(
        CLASSES, (BATCH,), generator=generator
    )


def soft_target(mixed: MixedBatch) -> torch.Tensor:
    return mixed.lam_a[:, None] * F.one_hot(mixed.targets_a, CLASSES) + mixed.lam_b[:, None] * F.one_hot(
        mixed.targets_b, CLASSES
    )


def force_our_draws(monkeypatch, module, partner: torch.Tensor, boxes=None, lam=None) -> None:
    """Make ``module``'s ``cutmix`` / ``mixup`` use these boxes (B, 4), lambdas (float64) and partners."""
    monkeypatch.setattr(module, "random_partner", lambda batch_size, generator: partner)
    if boxes is not None:
        monkeypatch.setattr(module, "draw_boxes", lambda *args: boxes)
    if lam is not None:
        monkeypatch.setattr(module, "sample_beta", lambda concentration, shape, generator: lam.reshape(shape))


def record_timm_boxes(monkeypatch) -> list:
    """Spy on timm's ``cutmix_bbox_and_lam``: each call's (yl, yh, xl, xh) box and corrected lambda."""
    import timm.data.mixup as timm_mixup

    calls = []
    original = timm_mixup.cutmix_bbox_and_lam

    def spy(*args, **kwargs):
        box, lam = original(*args, **kwargs)
        calls.append(([int(box[2]), int(box[0]), int(box[3]), int(box[1])], lam))  # as [x1, y1, x2, y2)
        return box, lam

    monkeypatch.setattr(timm_mixup, "cutmix_bbox_and_lam", spy)
    return calls


def record_numpy_beta(monkeypatch) -> list:
    """Spy on ``np.random.beta`` (timm draws Mixup's lambda with it)."""
    calls = []
    original = np.random.beta

    def spy(*args, **kwargs):
        value = original(*args, **kwargs)
        calls.append(value)
        return value

    monkeypatch.setattr(np.random, "beta", spy)
    return calls


def per_image(values: list, mode: str) -> list:
    """timm's per-batch / per-pair / per-element draws spread to one value per image."""
    if mode == "batch":
        return values * BATCH
    if mode == "pair":
        return [values[min(i, BATCH - 1 - i)] for i in range(BATCH)]
    return values


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_cutmix_matches_timm(mode, batch, monkeypatch):
    images, targets = batch
    calls = record_timm_boxes(monkeypatch)
    np.random.seed(1)
    timm_mixer = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, mode=mode, label_smoothing=0.0, num_classes=CLASSES)
    timm_images, timm_target = timm_mixer(images.clone(), targets)
    assert len(calls) == {"batch": 1, "pair": BATCH // 2, "elem": BATCH}[mode]

    boxes = torch.tensor(per_image([box for box, _ in calls], mode))
    force_our_draws(monkeypatch, cutmix_module, FLIP, boxes=boxes)
    ours = cutmix(images, targets, per_sample=mode != "batch")
    torch.testing.assert_close(ours.images, timm_images, rtol=0, atol=0)
    torch.testing.assert_close(soft_target(ours), timm_target, rtol=0, atol=1e-6)
    # timm's correct_lam=True (its default) is our clipped-area weight
    torch.testing.assert_close(ours.lam_a.double(), torch.tensor(per_image([lam for _, lam in calls], mode)))


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_mixup_matches_timm(mode, batch, monkeypatch):
    images, targets = batch
    calls = record_numpy_beta(monkeypatch)
    np.random.seed(2)
    timm_mixer = Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, mode=mode, label_smoothing=0.0, num_classes=CLASSES)
    timm_images, timm_target = timm_mixer(images.clone(), targets)
    assert len(calls) == 1

    lam = torch.tensor(per_image(np.atleast_1d(calls[0]).tolist(), mode), dtype=torch.float64)
    force_our_draws(monkeypatch, mixup_module, FLIP, lam=lam if mode != "batch" else lam[:1])
    ours = mixup(images, targets, per_sample=mode != "batch")
    torch.testing.assert_close(ours.images, timm_images, rtol=0, atol=1e-6)
    torch.testing.assert_close(soft_target(ours), timm_target, rtol=0, atol=1e-6)


def test_timm_default_label_smoothing_is_our_loss_with_label_smoothing(batch, monkeypatch):
    """timm smooths the mixed target (default 0.1); we keep hard labels and smooth in the loss: same loss."""
    images, targets = batch
    calls = record_timm_boxes(monkeypatch)
    np.random.seed(3)
    _, timm_target = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, num_classes=CLASSES)(images.clone(), targets)
    force_our_draws(monkeypatch, cutmix_module, FLIP, boxes=torch.tensor([calls[0][0]] * BATCH))
    ours = cutmix(images, targets)
    smoothing = 0.1
    torch.testing.assert_close(timm_target, (1 - smoothing) * soft_target(ours) + smoothing / CLASSES)
    logits = torch.randn(BATCH, CLASSES, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        mixed_cross_entropy(logits, ours, label_smoothing=smoothing), SoftTargetCrossEntropy()(logits, timm_target)
    )


def record_make_params(monkeypatch, transform_class) -> list:
    """Spy on a torchvision v2 mixing transform's ``make_params`` (its lambda and box draws)."""
    calls = []
    original = transform_class.make_params

    def spy(self, flat_inputs):
        params = original(self, flat_inputs)
        calls.append(params)
        return params

    monkeypatch.setattr(transform_class, "make_params", spy)
    return calls


def test_cutmix_matches_torchvision(batch, monkeypatch):
    images, targets = batch
    calls = record_make_params(monkeypatch, v2.CutMix)
    torch.manual_seed(4)
    tv_images, tv_target = v2.CutMix(alpha=1.0, num_classes=CLASSES)(images, targets)
    (params,) = calls

    force_our_draws(monkeypatch, cutmix_module, ROLL, boxes=torch.tensor([params["box"]] * BATCH))
    ours = cutmix(images, targets)
    torch.testing.assert_close(ours.images, tv_images, rtol=0, atol=0)
    torch.testing.assert_close(soft_target(ours), tv_target, rtol=0, atol=1e-6)


def test_mixup_matches_torchvision(batch, monkeypatch):
    images, targets = batch
    calls = record_make_params(monkeypatch, v2.MixUp)
    torch.manual_seed(5)
    tv_images, tv_target = v2.MixUp(alpha=1.0, num_classes=CLASSES)(images, targets)
    (params,) = calls

    force_our_draws(monkeypatch, mixup_module, ROLL, lam=torch.tensor([params["lam"]], dtype=torch.float64))
    ours = mixup(images, targets)
    torch.testing.assert_close(ours.images, tv_images, rtol=0, atol=1e-6)
    torch.testing.assert_close(soft_target(ours), tv_target, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", range(20))
def test_torchvision_cutmix_box_rule_is_ours(seed):
    """Given the same lambda and centre, torchvision's box is our (the SnapMix authors') box.

    Its half side ``int(0.5 * sqrt(1 - lam) * W)`` equals our ``int(W * sqrt(1 - lam)) // 2``
    (floor(floor(2y) / 2) = floor(y)), both draw the centre x then y uniformly, and both clip.
    """
    images = torch.zeros(2, 3, HEIGHT, WIDTH)
    cutmix_transform = v2.CutMix(alpha=1.0, num_classes=CLASSES)
    torch.manual_seed(seed)
    box = cutmix_transform.make_params([images])["box"]

    torch.manual_seed(seed)
    lam = cutmix_transform._dist.sample(())  # torchvision's own Beta draw, then its centre draws
    generator = torch.Generator().manual_seed(0)
    generator.set_state(torch.get_rng_state())
    ours = random_boxes(lam.double(), HEIGHT, WIDTH, generator)
    assert ours[0].tolist() == list(box)
