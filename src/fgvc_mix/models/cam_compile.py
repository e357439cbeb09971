"""Opt-in compiled CAM forward: ``torch.compile`` of the backbone for inference-mode forwards only.

SnapMix's no-grad CAM forward has a third of a training step's FLOPs but, timed on a GPU (issue 14),
a larger share of the step's time, most of it in BatchNorm's batch-statistics kernel in bf16/NHWC
(``benchmarks/cam_forward.py --device cuda`` measures it; its figures go in docs/benchmarks.md). Inductor
computes each BatchNorm's statistics and normalisation in its own fused reductions with the ReLU
around them. Only ``forward_features`` calls under ``torch.inference_mode`` (the CAM forward,
the CAM figures of the visualisation callback) take the compiled graph: training forwards with
gradients stay eager, and validation's ``forward_heads`` does not pass here, so neither changes.
``mix.cam_compile=true`` turns it on (``mixing.CamForward`` calls this on its first forward).
Whether it pays is a GPU measurement (``benchmarks/cam_forward.py --compiled``); until then it is
off by default.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fgvc_mix.models.classifier import FGVCClassifier


def compile_cam_forward(model: FGVCClassifier, **compile_options: Any) -> None:
    """Route ``model.forward_features`` through ``torch.compile(**compile_options)`` in inference mode.

    The compiled function guards on the BatchNorm mode (batch statistics with running statistics
    frozen, or eval mode with folded convolutions), so each CAM option compiles once. Calling it
    again on the same model changes nothing.
    """
    if getattr(model, "cam_forward_compiled", False):
        return
    eager = model.forward_features
    compiled = torch.compile(eager, **compile_options)

    def forward_features(images: Tensor) -> Tensor:
        return compiled(images) if torch.is_inference_mode_enabled() else eager(images)

    model.forward_features = forward_features
    model.cam_forward_compiled = True
