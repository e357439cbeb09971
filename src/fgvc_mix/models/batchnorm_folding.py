"""Eval-mode BatchNorm folded into the convolution before it, for the no-grad CAM forward.

In eval mode ``bn(conv(x))`` is ``conv'(x)`` with ``w' = w * s`` and
``b' = beta + (b - mean) * s``, ``s = gamma / sqrt(var + eps)`` per output channel:
one pass over the activations instead of two, the same result up to float rounding.
SnapMix's ``mix.cam_bn=eval`` CAM forward uses it.

Folding is cheap because it is rare and batched: the folded weights of a model are
cached and recomputed, all pairs at once with ``torch._foreach_*`` ops, only when a
folded parameter or BatchNorm statistic has changed since (their version counters,
and the BatchNorm batch counters that every running-statistics update bumps), so
once per optimiser step in training, never for a second CAM forward on the same
weights. They can never go stale, and nothing enters the state dict. The folded
weights carry no gradient: this is for no-grad forwards.

The conv -> BatchNorm pairs are found once with ``torch.fx``: only a conv whose sole
consumer is the BatchNorm, each called exactly once. A model that ``torch.fx`` cannot
trace (some timm models) simply runs unfolded.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Iterator

import torch
import torch.fx
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

log = logging.getLogger(__name__)


class FoldedConvBatchNorm(nn.Module):
    """``bn(conv(x))`` for an eval-mode ``bn`` as one convolution with precomputed folded weights."""

    def __init__(self, conv: nn.Conv2d, bn: _BatchNorm) -> None:
        super().__init__()
        self.conv = conv
        self.bn = bn
        self.folded_weight: Tensor | None = None  # plain attributes, set by _FoldedPairs.refold
        self.folded_bias: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        return self.conv._conv_forward(x, self.folded_weight, self.folded_bias)


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


class _FoldedPairs:
    """The folded modules of one model's ``pairs``, their cached weights and the state they were folded from."""

    def __init__(self, model: nn.Module, pairs: list[tuple[str, str]]) -> None:
        self.pairs = list(pairs)
        self.folded = [FoldedConvBatchNorm(model.get_submodule(c), model.get_submodule(b)) for c, b in pairs]
        # (parent, attribute, original, replacement) for every swap, resolved once
        self.swaps = [
            swap
            for (conv_name, bn_name), folded in zip(pairs, self.folded, strict=True)
            for swap in (_slot(model, conv_name, folded), _slot(model, bn_name, nn.Identity()))
        ]
        self.watched = [
            tensor
            for folded in self.folded
            for tensor in (
                folded.conv.weight,
                folded.conv.bias,
                folded.bn.weight,
                folded.bn.bias,
                folded.bn.running_mean,
                folded.bn.running_var,
                folded.bn.num_batches_tracked,  # bumped by every running-statistics update
            )
            if tensor is not None
        ]
        self.state: tuple | None = None

    def current(self, model: nn.Module, pairs: list[tuple[str, str]]) -> bool:
        """Still describes ``model``: the same pairs, the same modules in place."""
        return pairs == self.pairs and all(
            parent._modules[name] is original for parent, name, original, _ in self.swaps
        )

    def refold_if_changed(self) -> None:
        state = tuple((tensor.data_ptr(), tensor._version) for tensor in self.watched)
        if state != self.state:
            self.refold()
            self.state = state

    @torch.no_grad()
    def refold(self) -> None:
        """``w' = w * s``, ``b' = beta - mean * s (+ conv bias * s)``, ``s = gamma / sqrt(var + eps)``,
        for all pairs at once."""
        if not self.folded:
            return
        convs = [folded.conv for folded in self.folded]
        bns = [folded.bn for folded in self.folded]
        scale = torch._foreach_add([bn.running_var for bn in bns], [bn.eps for bn in bns])
        torch._foreach_rsqrt_(scale)
        affine = [i for i, bn in enumerate(bns) if bn.weight is not None]
        if affine:
            torch._foreach_mul_([scale[i] for i in affine], [bns[i].weight for i in affine])
        bias = torch._foreach_mul([bn.running_mean for bn in bns], scale)
        torch._foreach_neg_(bias)
        if affine:
            torch._foreach_add_([bias[i] for i in affine], [bns[i].bias for i in affine])
        conv_bias = [i for i, conv in enumerate(convs) if conv.bias is not None]
        if conv_bias:
            torch._foreach_addcmul_(
                [bias[i] for i in conv_bias], [convs[i].bias for i in conv_bias], [scale[i] for i in conv_bias]
            )
        self._allocate()
        torch._foreach_copy_([folded.folded_bias for folded in self.folded], bias)
        for folded, conv_scale in zip(self.folded, scale, strict=True):
            torch.mul(folded.conv.weight, conv_scale.reshape(-1, 1, 1, 1), out=folded.folded_weight)

    def _allocate(self) -> None:
        """Folded weights are written into buffers kept across refolds: fresh ~100 MB per step would
        cost page faults on the host and allocator churn on a device. Normal (not inference-mode)
        tensors, so a refold inside or outside ``torch.inference_mode`` may write them."""
        with torch.inference_mode(False):
            for folded in self.folded:
                weight = folded.conv.weight
                if folded.folded_weight is None or not _same_kind(folded.folded_weight, weight):
                    folded.folded_weight = torch.empty_like(weight)
                    folded.folded_bias = torch.empty_like(folded.bn.running_var)


def _same_kind(buffer: Tensor, source: Tensor) -> bool:
    return (
        buffer.shape == source.shape
        and buffer.dtype == source.dtype
        and buffer.device == source.device
        and buffer.stride() == source.stride()
    )


def _slot(model: nn.Module, name: str, replacement: nn.Module) -> tuple[nn.Module, str, nn.Module, nn.Module]:
    parent_name, _, attribute = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    return parent, attribute, parent._modules[attribute], replacement


_CACHE: weakref.WeakKeyDictionary[nn.Module, _FoldedPairs] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def folded_batchnorm(model: nn.Module, pairs: list[tuple[str, str]]) -> Iterator[None]:
    """Within the block, each ``(conv, bn)`` of ``pairs`` runs as one folded convolution.

    Only valid while those BatchNorm layers are in eval mode, and for forwards that need no
    gradient; the original modules are put back on exit, also after an exception.
    """
    folding = _CACHE.get(model)
    if folding is None or not folding.current(model, pairs):
        folding = _CACHE[model] = _FoldedPairs(model, pairs)
    folding.refold_if_changed()
    # Straight into ``_modules``: ~100 swaps per CAM forward, without nn.Module.__setattr__'s checks.
    swapped = 0
    try:
        for parent, name, _, replacement in folding.swaps:
            parent._modules[name] = replacement
            swapped += 1
        yield
    finally:
        for parent, name, original, _ in reversed(folding.swaps[:swapped]):
            parent._modules[name] = original
