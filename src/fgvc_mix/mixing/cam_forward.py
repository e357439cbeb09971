"""The no-grad CAM forward of the CAM-guided mixers (SnapMix and friends): clean batch in, CAMs out.

A ``CamForward`` owns how that extra forward runs (``mix.cam_bn``, ``mix.cam_resolution``,
``mix.cam_dtype``) and nothing else: a mixer that needs CAMs holds one and calls it on the
model it is given, ``cam_forward(model, images, targets)``. The forward runs under
``torch.inference_mode``, through the backbone only (no mid-level or auxiliary head), in
the batch's memory format (``channels_last``) and under whatever autocast training uses
(Lightning wraps ``training_step`` in it) unless ``cam_dtype`` asks for one.

* ``cam_bn=batch`` (default): BatchNorm uses batch statistics, as the authors' train-mode
  forward did, without updating the running statistics a second time per step.
* ``cam_bn=eval``: the running statistics, folded into the convolutions before them
  (``models.batchnorm_folding``; the conv -> BatchNorm pairs are found once per model).
* ``cam_resolution`` (opt-in, approximate): the forward runs on a copy downscaled so its
  shorter side has this many pixels; the CAMs are upsampled, so the labels still describe
  the images being mixed, at a coarser grain.
* ``cam_dtype`` (opt-in, approximate when training runs in float32): the forward runs under
  autocast to ``bfloat16``/``float16``; null (exact) keeps training's precision.
* ``cam_compile`` (opt-in, same CAMs up to float rounding): the first CAM forward routes the
  model's inference-mode ``forward_features`` through ``torch.compile``
  (``models.cam_compile.compile_cam_forward``); training forwards stay eager. Whether it pays
  is a GPU measurement (``benchmarks/cam_forward.py --compiled``).

Torch only, no Lightning: any training loop can call it.
"""

from __future__ import annotations

import contextlib
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fgvc_mix.errors import UserError
from fgvc_mix.mixing.cam import class_activation_maps
from fgvc_mix.models.batchnorm import eval_mode, frozen_batchnorm_statistics
from fgvc_mix.models.batchnorm_folding import conv_batchnorm_pairs, folded_batchnorm
from fgvc_mix.models.cam_compile import compile_cam_forward

CAM_BN_MODES = ("batch", "eval")
CAM_DTYPES = ("bfloat16", "float16")

_FOLDING_PAIRS: weakref.WeakKeyDictionary[nn.Module, list[tuple[str, str]]] = weakref.WeakKeyDictionary()


def folding_pairs(backbone: nn.Module) -> list[tuple[str, str]]:
    """``conv_batchnorm_pairs(backbone)``, traced once per backbone and shared by every ``CamForward``."""
    if backbone not in _FOLDING_PAIRS:
        _FOLDING_PAIRS[backbone] = conv_batchnorm_pairs(backbone)
    return _FOLDING_PAIRS[backbone]


class CamForward:
    """``cam_forward(model, images, targets)``: normalised target-class CAMs (B, H, W) of the clean batch.

    ``model`` is an ``FGVCClassifier`` (anything with ``forward_features``, a linear ``head``
    and, for ``cam_bn=eval``, a ``backbone``). The keywords are the ``mix`` config's keys.
    """

    def __init__(
        self,
        cam_bn: str = "batch",
        cam_resolution: int | None = None,
        cam_dtype: str | None = None,
        cam_compile: bool = False,
    ):
        if cam_bn not in CAM_BN_MODES:
            raise UserError(f"mix.cam_bn must be one of {CAM_BN_MODES}, got {cam_bn!r}")
        if cam_resolution is not None and cam_resolution < 8:
            raise UserError(f"mix.cam_resolution must be null (exact) or >= 8 pixels, got {cam_resolution}")
        if cam_dtype is not None and cam_dtype not in CAM_DTYPES:
            raise UserError(
                f"mix.cam_dtype must be null (training's precision) or one of {CAM_DTYPES}, got {cam_dtype!r}"
            )
        self.bn = cam_bn
        self.resolution = cam_resolution
        self.dtype = cam_dtype
        self.compile = cam_compile

    @torch.no_grad()
    def __call__(self, model: nn.Module, images: Tensor, targets: Tensor) -> Tensor:
        size = tuple(images.shape[-2:])
        inputs = images
        if self.resolution is not None and self.resolution < min(size):
            inputs = F.interpolate(images, scale_factor=self.resolution / min(size), mode="bilinear", antialias=True)
        if self.compile:
            compile_cam_forward(model)  # once per model: later calls return at once
        with torch.inference_mode(), self._batchnorm(model), self._autocast(images.device):
            features = model.forward_features(inputs)
        head = model.head
        # Outside inference mode, so the CAMs (and the label weights made from them) are ordinary tensors.
        return class_activation_maps(features, head.weight, head.bias, targets, size)

    def _batchnorm(self, model: nn.Module) -> contextlib.AbstractContextManager:
        if self.bn == "batch":
            return frozen_batchnorm_statistics(model)
        stack = contextlib.ExitStack()
        stack.enter_context(eval_mode(model))
        stack.enter_context(folded_batchnorm(model.backbone, folding_pairs(model.backbone)))
        return stack

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=getattr(torch, self.dtype))

    def __repr__(self) -> str:
        return (
            f"CamForward(cam_bn={self.bn!r}, cam_resolution={self.resolution}, cam_dtype={self.dtype!r}, "
            f"cam_compile={self.compile})"
        )
