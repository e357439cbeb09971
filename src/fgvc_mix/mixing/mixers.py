"""Mixer objects: small callables, like timm's ``Mixup``, that the LightningModule holds.

    mixed = mixer(images, targets, model)

A mixer owns the chance that a batch is mixed (``prob``), its method's parameters and
two CPU generators. A mixer guided by class activation maps (SnapMix, SaliencyMix,
Attentive CutMix, ResizeMix/FMix with ``labels=cam``) also owns a ``CamForward``, built
from its ``mix.cam_*`` options, and runs it on ``model`` only when the batch is actually
mixed, so an unmixed SnapMix batch costs no extra forward pass. Mixers that need no
CAMs take no CAM options and ignore ``model``.

The two generators split what may differ between DDP ranks from what must not:
``generator`` (boxes, lambdas, partners) is seeded per rank, so ranks mix their
batches differently; ``decision_generator`` (mix or not, drawn once per call) is
seeded without the rank, so every rank mixes in the same steps. The CAM forward of
SnapMix (and of the other CAM-guided mixers) runs only in mixed steps, and under
``trainer.sync_batchnorm=true`` its BatchNorm layers all-reduce: a rank that skipped
it would leave the others waiting.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from fgvc_mix.errors import UserError
from fgvc_mix.mixing.batch import MixedBatch, no_mix
from fgvc_mix.mixing.cam_forward import CamForward
from fgvc_mix.mixing.cutmix import cutmix
from fgvc_mix.mixing.mixup import mixup
from fgvc_mix.mixing.snapmix import SAME_LABEL_RULES, snapmix


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise UserError(f"mix.{name} must be > 0 (a Beta({name}, {name}) concentration), got {value}")


def _decision_seed(seed: int, step: int) -> int:
    """The seed of the mix-or-not stream: no rank in it; its own spawn key keeps it apart from the box stream."""
    return int(np.random.SeedSequence([seed, step], spawn_key=(1,)).generate_state(1)[0])


class Mixer:
    """Base mixer: mixes a batch with probability ``prob``, otherwise returns it unmixed.

    Subclasses implement ``mix_batch``; one that needs CAMs sets ``cam_forward`` in its
    constructor (``CamForward(**cam_options)``) and receives the CAMs there.
    """

    name: ClassVar[str] = "none"
    cam_forward: CamForward | None = None
    """The no-grad CAM forward of a CAM-guided mixer; ``None``: the mixer needs no CAMs."""

    def __init__(self, prob: float = 1.0, per_sample: bool = False, seed: int | None = None):
        if not 0.0 <= prob <= 1.0:
            raise UserError(f"mix.prob must be in [0, 1] (the chance a batch is mixed), got {prob}")
        self.prob = float(prob)
        self.per_sample = per_sample
        seed = 0 if seed is None else seed
        self.generator = torch.Generator().manual_seed(seed)
        self.decision_generator = torch.Generator().manual_seed(_decision_seed(seed, step=0))

    @property
    def needs_cams(self) -> bool:
        return self.cam_forward is not None

    def reseed(self, seed: int, rank: int = 0, step: int = 0) -> None:
        """Boxes from (seed, rank, step), so that ranks (and resumed ranks) draw different ones;
        mix-or-not decisions from (seed, step) alone, so that all ranks mix in the same steps."""
        self.generator.manual_seed(int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0]))
        self.decision_generator.manual_seed(_decision_seed(seed, step))

    def __call__(self, images: Tensor, targets: Tensor, model: nn.Module | None = None) -> MixedBatch:
        """Mix with probability ``prob``; ``model`` (an ``FGVCClassifier``) gives the mixers that need CAMs theirs."""
        # A CPU draw: no host-device synchronisation, whatever device the batch is on.
        if self.prob < 1.0 and torch.rand((), generator=self.decision_generator).item() >= self.prob:
            return no_mix(images, targets)
        return self.mix(images, targets, model)

    def mix(
        self,
        images: Tensor,
        targets: Tensor,
        model: nn.Module | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> MixedBatch:
        """Mix for certain (no ``prob`` draw), drawing boxes etc. from ``generator`` (default: the mixer's own)."""
        cams = None
        if self.cam_forward is not None:
            if model is None:
                raise ValueError(
                    f"{type(self).__name__} needs class activation maps: call it as mixer(images, targets, model)"
                )
            cams = self.cam_forward(model, images, targets)
        return self.mix_batch(images, targets, cams, self.generator if generator is None else generator)

    def mix_batch(self, images: Tensor, targets: Tensor, cams: Tensor | None, generator: torch.Generator) -> MixedBatch:
        """The method itself; ``cams`` (normalised, B x H x W) when ``cam_forward`` is set, else ``None``."""
        return no_mix(images, targets)

    def check_model(self, model: nn.Module) -> None:
        """Refuse (``UserError``) a model this mixer cannot train, when the module is built, not mid-training."""

    def forward_mixed(self, model: nn.Module, mixed: MixedBatch) -> tuple[dict[str, Tensor], MixedBatch]:
        """The forward of the mixed images (each head's logits, ``model.forward_heads``) and the batch the loss uses.

        The training step's one seam after mixing: a mixer whose label weights depend on this
        forward (TransMix: the class token's attention) overrides it and returns re-weighted labels.
        """
        return model.forward_heads(mixed.images), mixed

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prob={self.prob}, per_sample={self.per_sample})"


class NoMix(Mixer):
    """Plain training: every batch is returned as it is."""

    def __init__(self, prob: float = 0.0, per_sample: bool = False, seed: int | None = None):
        super().__init__(prob, per_sample, seed)


class Mixup(Mixer):
    """Mixup with ``lam ~ Beta(alpha, alpha)``."""

    name = "mixup"

    def __init__(self, prob: float = 0.5, alpha: float = 1.0, per_sample: bool = False, seed: int | None = None):
        super().__init__(prob, per_sample, seed)
        _check_positive("alpha", alpha)
        self.alpha = float(alpha)

    def mix_batch(self, images: Tensor, targets: Tensor, cams: Tensor | None, generator: torch.Generator) -> MixedBatch:
        return mixup(images, targets, alpha=self.alpha, per_sample=self.per_sample, generator=generator)


class CutMix(Mixer):
    """CutMix with area-based label weights; ``beta`` is the Beta concentration (paper: 3)."""

    name = "cutmix"

    def __init__(self, prob: float = 1.0, beta: float = 3.0, per_sample: bool = False, seed: int | None = None):
        super().__init__(prob, per_sample, seed)
        _check_positive("beta", beta)
        self.beta = float(beta)

    def mix_batch(self, images: Tensor, targets: Tensor, cams: Tensor | None, generator: torch.Generator) -> MixedBatch:
        return cutmix(images, targets, beta=self.beta, per_sample=self.per_sample, generator=generator)


class SnapMix(Mixer):
    """SnapMix with CAM-based label weights (paper: prob 1, beta 5); ``cam_options``: ``CamForward``'s."""

    name = "snapmix"

    def __init__(
        self,
        prob: float = 1.0,
        beta: float = 5.0,
        per_sample: bool = False,
        same_label: str = "sum",
        seed: int | None = None,
        **cam_options,
    ):
        super().__init__(prob, per_sample, seed)
        self.cam_forward = CamForward(**cam_options)
        _check_positive("beta", beta)
        if same_label not in SAME_LABEL_RULES:
            raise UserError(f"mix.same_label must be one of {SAME_LABEL_RULES}, got {same_label!r}")
        self.beta = float(beta)
        self.same_label = same_label

    def mix_batch(self, images: Tensor, targets: Tensor, cams: Tensor | None, generator: torch.Generator) -> MixedBatch:
        return snapmix(
            images,
            targets,
            cams,
            beta=self.beta,
            per_sample=self.per_sample,
            same_label=self.same_label,
            generator=generator,
        )
