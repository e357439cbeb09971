"""timm vision transformers as CAM-ready backbones: the patch tokens as a (B, C, h, w) map.

SnapMix's CAM is the linear head applied at every position of the last feature map.
For a transformer the positions are the patch tokens (after the final norm): the
token CAM is the head's class row applied to each patch token, on the patch grid.

- Average-pooled models (Swin; ViTs with ``global_pool="avg"``): the head classifies
  the mean of the patch tokens, so the logit is exactly the mean of the token CAM, as
  for a CNN. timm's ViTs apply their ``fc_norm`` LayerNorm after the pooling; here it
  is applied to every token before it (its pretrained weights kept), so that the head
  stays linear in the map, as the ConvNeXt head drops its LayerNorm.
- Class-token models (DeiT, ``vit_*``: ``global_pool="token"``): the head classifies the
  class token, as the model was trained. The token CAM for SnapMix is the same head
  applied to the patch tokens (the usual choice; the class token itself has no place
  on the grid). For these models TransMix (``mix=transmix``) reads the class token's
  attention instead, through ``ClassAttentionRecorder``.

``class_activation_maps`` rectifies the map (ReLU, for CNN features that are not
post-ReLU); LayerNorm'ed tokens are signed, so ``forward`` shifts each image's map by
its minimum. The shift adds one constant to that image's CAM, which the CAM's
min-subtraction removes: the normalised CAM is exactly that of the head applied per token.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from fgvc_mix.errors import UserError
from fgvc_mix.models.backbone import Backbone

POOLS = ("token", "avg")
SUPPORTED = "timm's VisionTransformer family (vit_*, deit_*, deit3_*) and Swin (swin_*, swinv2_*)"


def class_token_attention(attention: nn.Module, tokens: Tensor, num_prefix_tokens: int) -> Tensor:
    """The class token's attention to the patch tokens, averaged over heads: (B, N - num_prefix_tokens), float32.

    Recomputed from the input of timm's ``Attention`` (fused SDPA returns no weights):
    the class token's query against every key, softmax over all tokens as in the block,
    then the patch columns. Costs one key projection, a third of the block's QKV.
    """
    batch, count, _ = tokens.shape
    heads, head_dim = attention.num_heads, attention.head_dim
    weight, bias = attention.qkv.weight, attention.qkv.bias
    width = heads * head_dim
    query = F.linear(tokens[:, :1], weight[:width], None if bias is None else bias[:width])
    key = F.linear(tokens, weight[width : 2 * width], None if bias is None else bias[width : 2 * width])
    query = attention.q_norm(query.reshape(batch, 1, heads, head_dim).transpose(1, 2))
    key = attention.k_norm(key.reshape(batch, count, heads, head_dim).transpose(1, 2))
    scores = (query * attention.scale) @ key.transpose(-2, -1)  # (B, heads, 1, N)
    return scores.float().softmax(dim=-1)[:, :, 0, num_prefix_tokens:].mean(dim=1)


class ClassAttentionRecorder:
    """While entered, keeps the last block's class-token attention of each forward as ``attention`` (B, h, w).

    Forward hooks, no change to timm: the patch grid is read off the images entering the
    patch embedding, the attention recomputed (without gradients) from the last block's
    attention input.
    """

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.attention: Tensor | None = None
        self._grid: tuple[int, int] = (0, 0)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> ClassAttentionRecorder:
        self.attention = None
        self._handles = [
            self.net.patch_embed.register_forward_pre_hook(self._record_grid),
            self.net.blocks[-1].attn.register_forward_hook(self._record_attention),
        ]
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _record_grid(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        self._grid = tuple(module.dynamic_feat_size(args[0].shape[-2:]))

    def _record_attention(self, module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
        with torch.no_grad():
            attention = class_token_attention(module, args[0], self.net.num_prefix_tokens)
        self.attention = attention.reshape(attention.shape[0], *self._grid)


def _is_swin(net: nn.Module) -> bool:
    from timm.models.swin_transformer import SwinTransformer
    from timm.models.swin_transformer_v2 import SwinTransformerV2

    return isinstance(net, SwinTransformer | SwinTransformerV2)


class TransformerBackbone(Backbone):
    """A timm ViT or Swin: ``forward`` gives the CAM map of the patch tokens, ``forward_pooled`` what the head sees.

    The penultimate map (for the mid-level branch) is the output of the block (ViT) or
    stage (Swin) before the last, from timm's ``forward_intermediates``.
    """

    def __init__(self, net: nn.Module, name: str) -> None:
        mid_channels, out_channels = (info["num_chs"] for info in net.feature_info[-2:])
        super().__init__(net, nn.Identity(), mid_channels, out_channels)
        self.name = name
        self.swin = _is_swin(net)
        self.class_token = not self.swin and net.global_pool == "token"

    def _tokens(self, images: Tensor, with_mid: bool) -> tuple[Tensor | None, Tensor]:
        if not with_mid:
            return None, self.body.forward_features(images)
        final, (mid, _) = self.body.forward_intermediates(images, indices=2, output_fmt="NCHW")
        return mid, final

    def _map_and_pooled(self, images: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """The patch-token map (B, C, h, w) that the head is linear in, and the (B, C) features it classifies."""
        if self.swin:  # NHWC, LayerNorm'ed per token, average-pooled
            feature_map = tokens.permute(0, 3, 1, 2)
            return feature_map, feature_map.mean(dim=(2, 3))
        net = self.body
        height, width = net.patch_embed.dynamic_feat_size(images.shape[-2:])
        patches = net.fc_norm(tokens[:, net.num_prefix_tokens :])
        feature_map = patches.transpose(1, 2).reshape(tokens.shape[0], -1, height, width)
        pooled = net.fc_norm(tokens[:, 0]) if self.class_token else patches.mean(dim=1)
        return feature_map, pooled

    def forward(self, images: Tensor) -> Tensor:
        """The CAM map: patch tokens shifted by each image's minimum (see the module docstring)."""
        feature_map, _ = self._map_and_pooled(images, self._tokens(images, with_mid=False)[1])
        return feature_map - feature_map.amin(dim=(1, 2, 3), keepdim=True)

    def forward_stages(self, images: Tensor) -> tuple[Tensor, Tensor]:
        mid, tokens = self._tokens(images, with_mid=True)
        feature_map, _ = self._map_and_pooled(images, tokens)
        return mid, feature_map - feature_map.amin(dim=(1, 2, 3), keepdim=True)

    def forward_pooled(self, images: Tensor, with_mid: bool = False) -> tuple[Tensor | None, Tensor]:
        mid, tokens = self._tokens(images, with_mid)
        return mid, self._map_and_pooled(images, tokens)[1]

    def class_attention_recorder(self) -> ClassAttentionRecorder:
        """For TransMix: the class token's attention in the last block (class-token ViTs only)."""
        if not self.class_token:
            pooling = "Swin's average pool" if self.swin else f"global_pool={self.body.global_pool!r}"
            raise UserError(
                f"mix=transmix needs a class-token vision transformer; model.name={self.name!r} classifies with "
                f"{pooling}. Choose a class-token model (e.g. model.name=deit_tiny_patch16_224) or mix=snapmix"
            )
        return ClassAttentionRecorder(self.body)


def transformer_backbone(
    create_model: Callable[..., nn.Module], name: str, image_size: int | None, **options
) -> TransformerBackbone:
    """A timm transformer built by ``create_model(name, num_classes=0, img_size=image_size, **options)``.

    ``image_size`` (``${dataset.image_size}`` in conf/model/timm.yaml) sizes the position
    embeddings (timm resamples pretrained ones), so a patch-16 ViT sees a 4x4 grid at 64 px.
    """
    size = {} if image_size is None or "img_size" in options else {"img_size": image_size}
    try:
        net = create_model(name, num_classes=0, **size, **options)
    except (RuntimeError, TypeError) as error:  # timm's "Unknown model"; a keyword the family does not take
        raise ValueError(f"model.name={name!r}: timm cannot build it with {size | options} ({error})") from None
    from timm.models.vision_transformer import VisionTransformer

    if not (_is_swin(net) or isinstance(net, VisionTransformer)):
        raise ValueError(
            f"model.name={name!r} ({type(net).__name__}) is not a supported transformer: fgvc_mix reads token CAMs "
            f"from {SUPPORTED}; choose one of those or a convolutional timm model"
        )
    if not _is_swin(net) and (net.global_pool not in POOLS or net.attn_pool is not None):
        raise ValueError(
            f"model.name={name!r} pools its tokens with global_pool={net.global_pool!r}: token CAMs need a class "
            "token or an average pool; set model.backbone_options.global_pool=token (or avg)"
        )
    return TransformerBackbone(net, name)
