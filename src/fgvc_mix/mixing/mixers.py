"""Mixer objects: small callables, like timm's ``Mixup``, that the LightningModule holds.

A mixer owns the chance that a batch is mixed (``prob``), its method's parameters
and two CPU generators, and says whether it needs class activation maps. CAMs are
requested through a callback only when the batch is actually mixed, so an unmixed
SnapMix batch costs no extra forward pass.

The two generators split what may differ between DDP ranks from what must not:
``generator`` (boxes, lambdas, partners) is seeded per rank, so ranks mix their
batches differently; ``decision_generator`` (mix or not, drawn once per call) is
seeded without the rank, so every rank mixes in the same steps. The CAM forward of
SnapMix (and of the other CAM-guided mixers) runs only in mixed steps, and under
``trainer.sync_batchnorm=true`` its BatchNorm layers all-reduce: a rank that skipped
it would leave the others waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from fgvc_mix.mixing.batch import MixedBatch, no_mix
from fgvc_mix.mixing.cutmix import cutmix
from fgvc_mix.mixing.mixup import mixup
from fgvc_mix.mixing.snapmix import SAME_LABEL_RULES, snapmix

CAM_BN_MODES = ("batch", "eval")
CAM_DTYPES = ("bfloat16", "float16")
CamFunction = Callable[[Tensor, Tensor], Tensor]
"""(images, targets) -> normalised target-class CAMs (B, H, W) of those images."""


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"mix.{name} must be > 0 (a Beta({name}, {name}) concentration), got {value}")


def _decision_seed(seed: int, step: int) -> int:
    """The seed of the mix-or-not stream: no rank in it; its own spawn key keeps it apart from the box stream."""
    return int(np.random.SeedSequence([seed, step], spawn_key=(1,)).generate_state(1)[0])


class Mixer:
    """Base mixer: mixes a batch with probability ``prob``, otherwise returns it unmixed.

    ``cam_bn`` tells the training loop how BatchNorm behaves in the no-grad CAM
    forward: ``batch`` uses batch statistics and leaves the running ones untouched
    (the authors' train-mode forward, without its second running-stat update);
    ``eval`` uses the running statistics. ``cam_resolution`` (opt-in, approximate) runs that
    forward on a copy of the batch downscaled so its shorter side has this many pixels, and
    upsamples the CAMs: the labels still describe the images being mixed, at a coarser grain.
    ``cam_dtype`` (opt-in, approximate when training runs in float32) runs that forward under
    autocast to ``bfloat16``/``float16``; null (exact) keeps whatever autocast training uses.
    """

    name: ClassVar[str] = "none"
    needs_cams: ClassVar[bool] = False

    def __init__(
        self,
        prob: float = 1.0,
        per_sample: bool = False,
        seed: int | None = None,
        cam_bn: str = "batch",
        cam_resolution: int | None = None,
        cam_dtype: str | None = None,
    ):
        if cam_dtype is not None and cam_dtype not in CAM_DTYPES:
            raise ValueError(
                f"mix.cam_dtype must be null (training's precision) or one of {CAM_DTYPES}, got {cam_dtype!r}"
            )
        if cam_resolution is not None and cam_resolution < 8:
            raise ValueError(f"mix.cam_resolution must be null (exact) or >= 8 pixels, got {cam_resolution}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"mix.prob must be in [0, 1] (the chance a batch is mixed), got {prob}")
        if cam_bn not in CAM_BN_MODES:
            raise ValueError(f"mix.cam_bn must be one of {CAM_BN_MODES}, got {cam_bn!r}")
        self.prob = float(prob)
        self.per_sample = per_sample
        self.cam_bn = cam_bn
        self.cam_resolution = cam_resolution
        self.cam_dtype = cam_dtype
        seed = 0 if seed is None else seed
        self.generator = torch.Generator().manual_seed(seed)
        self.decision_generator = torch.Generator().manual_seed(_decision_seed(seed, step=0))

    def reseed(self, seed: int, rank: int = 0, step: int = 0) -> None:
        """Boxes from (seed, rank, step), so that ranks (and resumed ranks) draw different ones;
        mix-or-not decisions from (seed, step) alone, so that all ranks mix in the same steps."""
        self.generator.manual_seed(int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0]))
        self.decision_generator.manual_seed(_decision_seed(seed, step))

    def __call__(self, images: Tensor, targets: Tensor, cam_fn: CamFunction | None = None) -> MixedBatch:
        # A CPU draw: no host-device synchronisation, whatever device the batch is on.
        if self.prob < 1.0 and torch.rand((), generator=self.decision_generator).item() >= self.prob:
            return no_mix(images, targets)
        return self.mix(images, targets, cam_fn)

    def mix(self, images: Tensor, targets: Tensor, cam_fn: CamFunction | None) -> MixedBatch:
        """Mix for certain (no ``prob`` draw), with boxes etc. from ``generator``; subclasses override it."""
        return no_mix(images, targets)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prob={self.prob}, per_sample={self.per_sample})"


class NoMix(Mixer):
    """Plain training: every batch is returned as it is."""

    def __init__(self, prob: float = 0.0, per_sample: bool = False, seed: int | None = None, cam_bn: str = "batch"):
        super().__init__(prob, per_sample, seed, cam_bn)


class Mixup(Mixer):
    """Mixup with ``lam ~ Beta(alpha, alpha)``."""

    name = "mixup"

    def __init__(
        self, prob: float = 0.5, alpha: float = 1.0, per_sample: bool = False, seed: int | None = None, cam_bn="batch"
    ):
        super().__init__(prob, per_sample, seed, cam_bn)
        _check_positive("alpha", alpha)
        self.alpha = float(alpha)

    def mix(self, images: Tensor, targets: Tensor, cam_fn: CamFunction | None) -> MixedBatch:
        return mixup(images, targets, alpha=self.alpha, per_sample=self.per_sample, generator=self.generator)


class CutMix(Mixer):
    """CutMix with area-based label weights; ``beta`` is the Beta concentration (paper: 3)."""

    name = "cutmix"

    def __init__(
        self, prob: float = 1.0, beta: float = 3.0, per_sample: bool = False, seed: int | None = None, cam_bn="batch"
    ):
        super().__init__(prob, per_sample, seed, cam_bn)
        _check_positive("beta", beta)
        self.beta = float(beta)

    def mix(self, images: Tensor, targets: Tensor, cam_fn: CamFunction | None) -> MixedBatch:
        return cutmix(images, targets, alpha=self.beta, per_sample=self.per_sample, generator=self.generator)


class SnapMix(Mixer):
    """SnapMix with CAM-based label weights (paper: prob 1, beta 5)."""

    name = "snapmix"
    needs_cams = True

    def __init__(
        self,
        prob: float = 1.0,
        beta: float = 5.0,
        per_sample: bool = False,
        same_label: str = "sum",
        seed: int | None = None,
        cam_bn: str = "batch",
        cam_resolution: int | None = None,
        cam_dtype: str | None = None,
    ):
        super().__init__(prob, per_sample, seed, cam_bn, cam_resolution, cam_dtype)
        _check_positive("beta", beta)
        if same_label not in SAME_LABEL_RULES:
            raise ValueError(f"mix.same_label must be one of {SAME_LABEL_RULES}, got {same_label!r}")
        self.beta = float(beta)
        self.same_label = same_label

    def mix(self, images: Tensor, targets: Tensor, cam_fn: CamFunction | None) -> MixedBatch:
        if cam_fn is None:
            raise ValueError("SnapMix needs class activation maps: pass cam_fn(images, targets) -> (B, H, W) CAMs")
        cams = cam_fn(images, targets)
        return snapmix(
            images,
            targets,
            cams,
            beta=self.beta,
            per_sample=self.per_sample,
            same_label=self.same_label,
            generator=self.generator,
        )
