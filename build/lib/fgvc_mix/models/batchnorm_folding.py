"""Eval-mode BatchNorm folded into the convolution before it, for the no-grad CAM forward.

In eval mode ``bn(conv(x))`` is ``conv'(x)`` with ``w' = w * s`` and
``b' = beta + (b - mean) * s``, ``s = gamma / sqrt(var + eps)`` per output channel:
one pass over the activations instead of two, the same result up to float rounding.
SnapMix's ``mix.cam_bn=eval`` CAM forward uses it. The folded weights are computed
from the live parameters at every call (a few microseconds per layer), so they can
never go stale as training updates the convolution and BatchNorm layers; nothing is
copied and nothing enters the state dict.

The conv -> BatchNorm pairs are found once with ``torch.fx``: only a conv whose sole
consumer is the BatchNorm, each called exactly once. A model that ``torch.fx`` cannot
trace (some timm models) simply runs unfolded.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
import torch.fx
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

log = logging.getLogger(__name__)


class FoldedConvBatchNorm(nn.Module):
    """``bn(conv(x))`` for an eval-mode ``bn`` as one convolution with weights folded on the fly."""

    def __init__(self, conv: nn.Conv2d, bn: _BatchNorm) -> None:
        super().__init__()
        self.conv = conv
        self.bn = bn

    def forward(self, x: Tensor) -> Tensor:
        conv, bn = self.conv, self.bn
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        bias = -bn.running_mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias * scale
        if bn.bias is not None:
            bias = bias + bn.bias
        return conv._conv_forward(x, conv.weight * scale.reshape(-1, 1, 1, 1), bias)


def conv_batchnorm_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """Qualified names ``(conv, bn)`` of every Conv2d feeding only a BatchNorm2d that tracks running stats.

    Empty when ``torch.fx`` cannot trace ``model``.
    """
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as error:
        log.info("BatchNorm folding off for %s (torch.fx cannot trace it: %s)", type(model).__name__, error)
        return []
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        source = node.args[0] if node.op == "call_module" and node.args else None
        if not isinstance(source, torch.fx.Node) or source.op != "call_module" or len(source.users) != 1:
            continue
        conv, bn = modules[source.target], modules[node.target]
        if (
            isinstance(conv, nn.Conv2d)
            and isinstance(bn, _BatchNorm)
            and bn.track_running_stats
            and calls[source.target] == calls[node.target] == 1
        ):
            pairs.append((source.target, node.target))
    return pairs


def _swap(model: nn.Module, name: str, replacement: nn.Module) -> nn.Module:
    parent_name, _, attribute = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    original = getattr(parent, attribute)
    setattr(parent, attribute, replacement)
    return original


@contextlib.contextmanager
def folded_batchnorm(model: nn.Module, pairs: list[tuple[str, str]]) -> Iterator[None]:
    """Within the block, each ``(conv, bn)`` of ``pairs`` runs as one folded convolution.

    Only valid while those BatchNorm layers are in eval mode; the original modules are
    put back on exit, also after an exception.
    """
    swapped: list[tuple[str, nn.Module]] = []
    try:
        for conv_name, bn_name in pairs:
            conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
            swapped.append((conv_name, _swap(model, conv_name, FoldedConvBatchNorm(conv, bn))))
            swapped.append((bn_name, _swap(model, bn_name, nn.Identity())))
        yield
    finally:
        for name, original in reversed(swapped):
            _swap(model, name, original)
