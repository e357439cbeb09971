"""timm vision transformers as CAM-ready backbones (token CAMs) and TransMix (class-token attention labels)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from helpers import TINY_SYNTHETIC
from torch import nn

from fgvc_mix.errors import UserError
from fgvc_mix.mixing import MixedBatch, class_activation_maps, cutmix
from fgvc_mix.mixing.transmix import TransMix, transmix_labels
from fgvc_mix.models import build_classifier
from fgvc_mix.train import build

pytest.importorskip("timm")

SIZE = 64  # the synthetic data's side: a 4x4 patch grid for patch-16 ViTs, 2x2 for Swin-T
CLASS_TOKEN = "deit_tiny_patch16_224"
# name, timm options: a class-token ViT, an average-pooled ViT (fc_norm), Swin (NHWC maps)
TRANSFORMERS = [
    (CLASS_TOKEN, {}),
    ("vit_tiny_patch16_224", {"global_pool": "avg"}),
    ("swin_tiny_patch4_window7_224", {}),
]


def transformer(name: str, options: dict, num_classes: int = 5, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    model = build_classifier(
        name, num_classes, source="timm", image_size=SIZE, backbone_options=options, **kwargs
    ).eval()
    with torch.no_grad():  # a head far from its zero-bias init, so a wrong bias or row shows
        model.head.bias.normal_()
    return model


def patch_tokens(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Reference: timm's normalised patch tokens as (B, h, w, C), straight from the timm model."""
    net = model.backbone.body
    tokens = net.forward_features(images)
    if tokens.ndim == 4:  # Swin: NHWC already
        return tokens
    patches = net.fc_norm(tokens[:, net.num_prefix_tokens :])  # fc_norm: the avg-pooled ViT's per-token norm
    side = math.isqrt(patches.shape[1])
    return patches.reshape(len(images), side, side, -1)


@pytest.mark.parametrize(("name", "options"), TRANSFORMERS)
def test_token_cam_is_the_head_applied_to_each_patch_token(name, options):
    model = transformer(name, options)
    images, targets = torch.randn(3, 3, SIZE, SIZE), torch.tensor([0, 3, 4])
    with torch.no_grad():
        features = model.forward_features(images)
        cams = class_activation_maps(features, model.head.weight, model.head.bias, targets, (SIZE, SIZE))
        tokens = patch_tokens(model, images)
    grid = 2 if name.startswith("swin") else SIZE // 16
    assert features.shape == (3, model.backbone.out_channels, grid, grid)
    for i, target in enumerate(targets.tolist()):  # the target's logit at every token, one token at a time
        logits = torch.zeros(grid, grid)
        for row in range(grid):
            for col in range(grid):
                logits[row, col] = model.head(tokens[i, row, col])[target]
        expected = F.interpolate(logits[None, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0]
        expected = expected - expected.min()
        torch.testing.assert_close(cams[i], expected / expected.sum(), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize(("name", "options"), TRANSFORMERS)
def test_the_head_classifies_what_the_model_was_trained_to_pool(name, options):
    model = transformer(name, options)
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        logits = model(images)
        net = model.backbone.body
        if name == CLASS_TOKEN:  # the class token, exactly as timm's own head pools it
            expected = model.head(net.forward_head(net.forward_features(images), pre_logits=True))
        else:  # an average pool: the logit is the mean of the token logits (the CAM adds up to it)
            expected = model.head(patch_tokens(model, images)).mean(dim=(1, 2))
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_mid_level_branch_reads_the_penultimate_block():
    model = transformer(CLASS_TOKEN, {}, mid_level=True, mid_level_channels=8)
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        outputs = model.forward_heads(images)
        _, (penultimate, _) = model.backbone.body.forward_intermediates(images, indices=2)
        plain = model.head(model.backbone.forward_pooled(images)[1])
    assert set(outputs) == {"main", "mid"}
    torch.testing.assert_close(outputs["main"], plain)
    torch.testing.assert_close(outputs["mid"], model.mid_level(penultimate))


def test_class_attention_is_the_last_blocks_class_row_averaged_over_heads():
    model = transformer(CLASS_TOKEN, {})
    net = model.backbone.body
    attention = net.blocks[-1].attn
    seen = []
    handle = attention.register_forward_hook(lambda module, args, output: seen.append(args[0]))
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad(), model.backbone.class_attention_recorder() as recorder:
        model(images)
    handle.remove()
    # Reference: the block's full attention matrix, written out (timm runs it fused and keeps no weights).
    tokens = seen[0]
    qkv = attention.qkv(tokens).reshape(2, tokens.shape[1], 3, attention.num_heads, -1).permute(2, 0, 3, 1, 4)
    weights = ((qkv[0] * attention.scale) @ qkv[1].transpose(-2, -1)).softmax(dim=-1)
    expected = weights.mean(dim=1)[:, 0, 1:].reshape(2, 4, 4)
    torch.testing.assert_close(recorder.attention, expected)
    assert not recorder.attention.requires_grad
    assert not attention._forward_hooks  # the recorder's hook left with the context


def reference_transmix(attention, box, lam_area, size):
    """The authors' ``transmix_label`` for one image: pixel mask, nn.Upsample to the grid, (lam0 + lam1) / 2."""
    x1, y1, x2, y2 = box.tolist()
    mask = torch.zeros(size)
    mask[y1:y2, x1:x2] = 1
    mask = nn.Upsample(size=tuple(attention.shape))(mask[None, None]).int()[0, 0]
    w1, w2 = ((1 - mask) * attention).sum(), (mask * attention).sum()
    return (lam_area + w2 / (w1 + w2)) / 2


@pytest.mark.parametrize("size", [(64, 64), (64, 48), (50, 70)])
def test_transmix_labels_match_a_per_image_reference(size):
    generator = torch.Generator().manual_seed(3)
    images, targets = torch.randn(6, 3, *size, generator=generator), torch.arange(6)
    mixed = cutmix(images, targets, beta=1.0, per_sample=True, generator=generator)
    grid = (size[0] // 16, size[1] // 16)
    attention = torch.rand(6, *grid, generator=generator).softmax(dim=-1) * 0.9  # the class token keeps the rest
    relabelled = transmix_labels(mixed, attention)
    for i in range(6):
        expected = reference_transmix(attention[i], mixed.box_a[i], float(mixed.lam_b[i]), size)
        assert float(relabelled.lam_b[i]) == pytest.approx(float(expected), abs=1e-6)
    torch.testing.assert_close(relabelled.lam_a, 1.0 - relabelled.lam_b)
    assert relabelled.images is mixed.images and torch.equal(relabelled.targets_b, mixed.targets_b)
    # attention_share 1: the attention alone; 0: CutMix's area labels unchanged
    only_attention = transmix_labels(mixed, attention, attention_share=1.0)
    torch.testing.assert_close(only_attention.lam_b, 2 * relabelled.lam_b - mixed.lam_b)
    torch.testing.assert_close(transmix_labels(mixed, attention, attention_share=0.0).lam_b, mixed.lam_b)


def test_transmix_empty_box_and_unmixed_batch_keep_their_labels():
    images, targets = torch.randn(2, 3, SIZE, SIZE), torch.tensor([0, 1])
    attention = torch.rand(2, 4, 4)
    empty = torch.zeros(2, 4, dtype=torch.int64)
    zeros, ones = torch.zeros(2), torch.ones(2)
    mixed = MixedBatch(images, targets, targets.flip(0), ones, zeros, torch.tensor([1, 0]), empty, empty)
    relabelled = transmix_labels(mixed, attention)
    torch.testing.assert_close(relabelled.lam_b, zeros)
    torch.testing.assert_close(relabelled.lam_a, ones)
    mixer = TransMix(prob=0.0)
    unmixed = mixer(images, targets)
    assert unmixed.box_a is None and mixer.relabel(unmixed, None) is unmixed


def test_transmix_mixer_is_seeded_batched_and_takes_a_batch_of_one():
    images, targets = torch.randn(5, 3, SIZE, SIZE), torch.arange(5)
    attention = torch.rand(5, 4, 4)
    first, second = TransMix(seed=7, per_sample=True), TransMix(seed=7, per_sample=True)
    a, b = first(images, targets), second(images, targets)
    assert torch.equal(a.images, b.images) and torch.equal(a.box_a, b.box_a)
    torch.testing.assert_close(first.relabel(a, attention).lam_b, second.relabel(b, attention).lam_b)
    assert len({tuple(box.tolist()) for box in a.box_a}) > 1  # per_sample: each image its own box
    shared = TransMix(seed=7)(images, targets)
    assert len({tuple(box.tolist()) for box in shared.box_a}) == 1
    single = TransMix(seed=1)
    one = single.relabel(single(images[:1], targets[:1]), attention[:1])
    assert one.lam_a.shape == (1,) and float(one.lam_a + one.lam_b) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="class token's attention"):
        single.relabel(single(images, targets), None)
    with pytest.raises(ValueError, match=r"mix\.attention_share"):
        TransMix(attention_share=1.5)


@pytest.mark.parametrize(("name", "source"), [("small_cnn", "builtin"), ("swin_tiny_patch4_window7_224", "timm")])
def test_transmix_without_a_class_token_fails_with_one_clear_message(name, source):
    model = build_classifier(name, 3, source=source, image_size=SIZE)
    with pytest.raises(UserError, match="mix=transmix"):
        TransMix().check_model(model)


class StepOutputs(pl.Callback):
    def __init__(self) -> None:
        self.outputs: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.outputs.append(outputs)


@pytest.mark.parametrize("mix", ["snapmix", "transmix"])
def test_deit_fast_dev_run_with_its_image_size_from_the_config(mix, tiny_config):
    # The README's command, with pretrained=false (no download in tests) and the tiny synthetic data.
    cfg = tiny_config(
        "model=timm",
        f"model.name={CLASS_TOKEN}",
        "model.pretrained=false",
        f"mix={mix}",
        "mix.prob=1.0",
        "+trainer.fast_dev_run=true",
        "dataset.batch_size=4",
    )
    assert cfg.model.image_size == cfg.dataset.image_size == SIZE  # from the dataset, not the command line
    module, datamodule, trainer = build(cfg)
    recorder = StepOutputs()
    trainer.callbacks.append(recorder)
    trainer.fit(module, datamodule=datamodule)
    (step,) = recorder.outputs
    assert torch.isfinite(step["loss"])
    if mix == "transmix":  # relabelled from the attention: no longer the box's area share
        area = (step["box_a"][:, 2] - step["box_a"][:, 0]) * (step["box_a"][:, 3] - step["box_a"][:, 1]) / SIZE**2
        torch.testing.assert_close(step["lam_a"] + step["lam_b"], torch.ones(4))
        assert not torch.allclose(step["lam_b"], area.float())


def test_transmix_on_a_cnn_fails_before_training(tiny_config):
    with pytest.raises(ValueError, match=r"mix=transmix .* is a CNN"):
        build(tiny_config("mix=transmix"))


@pytest.mark.slow
def test_two_process_ddp_trains_deit_with_transmix(tmp_path):
    # Hooks on the wrapped model's last block, every parameter in the loss (no unused-parameter error).
    overrides = ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "optim.epochs=1", "model=timm"]
    overrides += [f"model.name={CLASS_TOKEN}", "model.pretrained=false", "mix=transmix", f"hydra.run.dir={tmp_path}"]
    command = [sys.executable, "-m", "fgvc_mix.train", *TINY_SYNTHETIC, *overrides]
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_offline_pretrained_transformer_fails_with_one_message_naming_the_options(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(OSError, match="cannot download timm's pretrained weights") as raised:
        build_classifier(CLASS_TOKEN, 3, source="timm", pretrained=True, image_size=SIZE)
    message = str(raised.value)
    assert "model.pretrained=false" in message and "model.weights_path=<file>" in message
    assert raised.value.__cause__ is None
