"""BatchNorm helpers for forwards that must not disturb training: eval mode, frozen statistics, snapshots.

SnapMix's CAM forward, the dashboards and the meters run extra forwards of the model
being trained; these keep them from moving its running statistics (or, for callbacks
on one DDP rank, from issuing SyncBatchNorm collectives).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import Tensor, nn


def batchnorm_buffers(model: nn.Module, clone: bool = False) -> list[Tensor]:
    """Running means, variances and batch counters of every BatchNorm layer."""
    buffers = [
        buffer
        for layer in model.modules()
        if isinstance(layer, nn.modules.batchnorm._BatchNorm)
        for buffer in layer.buffers()
    ]
    return [b.clone() for b in buffers] if clone else buffers


@contextlib.contextmanager
def frozen_batchnorm_statistics(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers normalise with batch statistics but leave running stats and counters untouched.

    With ``track_running_stats`` off, a BatchNorm in training mode passes no running
    buffers to ``F.batch_norm`` and skips its batch counter; the buffers stay as they were.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for layer in layers:
        layer.track_running_stats = False
    try:
        yield
    finally:
        for layer in layers:
            layer.track_running_stats = True


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Temporarily switch ``model`` to eval mode (BatchNorm running statistics, no dropout)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
