"""The lean CAM forward: inference mode, backbone only, training's precision and layout, folded eval BatchNorm."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fgvc_mix.mixing import CamForward, MixedBatch, Mixer, class_activation_maps
from fgvc_mix.mixing.cam_labels import mask_weights
from fgvc_mix.models import build_classifier
from fgvc_mix.models.batchnorm_folding import FoldedConvBatchNorm, conv_batchnorm_pairs, folded_batchnorm
from fgvc_mix.train import build
from fgvc_mix.training.module import FGVCModule

# backbone, image side, whether it has conv -> BatchNorm pairs to fold
FOLDABLE = {
    "small_cnn": (32, True),
    "resnet18": (64, True),
    "densenet121": (32, True),
    "efficientnet_b0": (32, True),
    "convnext_tiny": (32, False),  # LayerNorm only: nothing to fold, runs as it is
}


def randomise_batchnorm(model: nn.Module) -> None:
    """Running statistics and affine parameters far from their initial (identity) values."""
    generator = torch.Generator().manual_seed(0)
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm2d):
            channels = layer.num_features
            layer.running_mean.copy_(torch.randn(channels, generator=generator) * 0.5)
            layer.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
            layer.weight.data.copy_(torch.rand(channels, generator=generator) + 0.5)
            layer.bias.data.copy_(torch.randn(channels, generator=generator) * 0.2)


@pytest.mark.parametrize("name", FOLDABLE)
def test_folded_batchnorm_equals_eval_mode_and_puts_every_module_back(name):
    size, foldable = FOLDABLE[name]
    model = build_classifier(name, num_classes=5).eval()
    randomise_batchnorm(model)
    backbone = model.backbone
    modules_before = dict(backbone.named_modules())
    state_before = {key: value.clone() for key, value in backbone.state_dict().items()}
    images = torch.randn(2, 3, size, size)

    pairs = conv_batchnorm_pairs(backbone)
    assert bool(pairs) == foldable
    with torch.inference_mode():
        expected = backbone(images)
        with folded_batchnorm(backbone, pairs):
            assert sum(isinstance(m, FoldedConvBatchNorm) for m in backbone.modules()) == len(pairs)
            folded = backbone(images)
    torch.testing.assert_close(folded, expected, rtol=1e-4, atol=1e-4)
    assert dict(backbone.named_modules()).keys() == modules_before.keys()
    assert all(module is modules_before[key] for key, module in backbone.named_modules())
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, state_before[key]), key


def test_folding_restores_the_model_after_an_exception_and_skips_untraceable_models():
    model = build_classifier("small_cnn", num_classes=3).eval()
    pairs = conv_batchnorm_pairs(model.backbone)
    original = dict(model.backbone.named_modules())
    with pytest.raises(RuntimeError, match="boom"), folded_batchnorm(model.backbone, pairs):
        raise RuntimeError("boom")
    assert all(module is original[key] for key, module in model.backbone.named_modules())

    class DataDependent(nn.Module):  # Python control flow on a tensor value: torch.fx cannot trace it
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn(self.conv(x)) if x.sum() > 0 else x

    assert conv_batchnorm_pairs(DataDependent()) == []


def test_cam_bn_eval_cams_equal_the_unfolded_eval_forward(tiny_config, monkeypatch):
    module, datamodule, _ = build(tiny_config("mix.cam_bn=eval", "logger=[]", "callbacks=[]"))
    randomise_batchnorm(module.model)
    module.train()
    images, targets = next(iter(datamodule.train_dataloader()))
    folded_calls = []
    forward = FoldedConvBatchNorm.forward
    monkeypatch.setattr(FoldedConvBatchNorm, "forward", lambda self, x: folded_calls.append(1) or forward(self, x))
    cams = module.mixer.cam_forward(module.model, images, targets)
    assert folded_calls, "small_cnn's conv -> BatchNorm pairs should be folded"
    assert module.model.training
    module.eval()
    with torch.no_grad():
        features = module.model.forward_features(images)
    head = module.model.head
    expected = class_activation_maps(features, head.weight, head.bias, targets, tuple(images.shape[-2:]))
    torch.testing.assert_close(cams, expected, rtol=1e-4, atol=1e-6)


def record_calls(module) -> tuple[list[dict], list[str]]:
    """Each backbone forward (through its body, which every path runs): grad mode, input layout,
    output dtype, train/eval; and each call of the mid-level head."""
    calls: list[dict] = []
    mid_calls: list[str] = []

    def on_body(layer, inputs, output):
        calls.append(
            {
                "inference": torch.is_inference_mode_enabled(),
                "grad": torch.is_grad_enabled(),
                "training": layer.training,
                "dtype": output.dtype,
                "channels_last": inputs[0].is_contiguous(memory_format=torch.channels_last)
                and not inputs[0].is_contiguous(),
            }
        )

    module.model.backbone.body.register_forward_hook(on_body)
    module.model.mid_level.register_forward_hook(lambda *args: mid_calls.append("mid"))
    return calls, mid_calls


def test_cam_forward_is_inference_mode_backbone_only_and_cams_are_ordinary_tensors(tiny_config):
    cfg = tiny_config("model.mid_level=true", "model.mid_level_channels=8", "logger=[]", "callbacks=[]")
    module, datamodule, _ = build(cfg)
    module.train()
    calls, mid_calls = record_calls(module)
    images, targets = next(iter(datamodule.train_dataloader()))
    cams = module.mixer.cam_forward(module.model, images, targets)
    assert calls == [
        {"inference": True, "grad": False, "training": True, "dtype": torch.float32, "channels_last": False}
    ]
    assert mid_calls == []
    assert not cams.is_inference()
    # the label weights made from the CAMs enter the loss, whose backward must accept them
    mixed = module.mixer.mix(images, targets, module.model)
    (mixed.lam_a * module.model(mixed.images).logsumexp(dim=1)).sum().backward()


@pytest.mark.parametrize(
    ("overrides", "cam_dtype"),
    [
        ((), torch.float32),
        (("trainer.precision=bf16-mixed",), torch.bfloat16),  # the training's autocast reaches the CAM forward
        (("mix.cam_dtype=bfloat16",), torch.bfloat16),  # opt-in: bf16 CAMs while training in float32
    ],
)
def test_cam_forward_runs_in_the_training_precision_and_layout(overrides, cam_dtype, tiny_config):
    cfg = tiny_config(*overrides, "mix.prob=1.0", "model.mid_level=true", "trainer=debug", "logger=[]", "callbacks=[]")
    module, datamodule, trainer = build(cfg)
    calls, _ = record_calls(module)
    trainer.fit(module, datamodule=datamodule)
    cam_calls = [call for call in calls if call["training"] and call["inference"]]
    training_calls = [call for call in calls if call["training"] and call["grad"]]
    assert len(cam_calls) == 1 and len(training_calls) == 1
    assert cam_calls[0]["dtype"] == cam_dtype
    training_dtype = torch.bfloat16 if "trainer.precision=bf16-mixed" in overrides else torch.float32
    assert training_calls[0]["dtype"] == training_dtype
    # channels_last (the default config) reaches both forwards: the clean batch and the mixed one
    assert cam_calls[0]["channels_last"] and training_calls[0]["channels_last"]
    assert torch.isfinite(torch.tensor(trainer.callback_metrics["train/loss"].item()))


def test_channels_last_changes_the_layout_not_the_results(tiny_config):
    modules = {}
    for channels_last in (False, True):
        module, datamodule, _ = build(tiny_config(f"channels_last={channels_last}", "logger=[]", "callbacks=[]"))
        modules[channels_last] = module.train()
    modules[True].model.load_state_dict(modules[False].model.state_dict())
    conv = next(m for m in modules[True].model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    images, targets = next(iter(datamodule.train_dataloader()))
    nhwc_images = modules[True].in_model_layout(images)
    assert nhwc_images.is_contiguous(memory_format=torch.channels_last) and torch.equal(nhwc_images, images)
    assert modules[False].in_model_layout(images) is images
    torch.testing.assert_close(
        modules[True].mixer.cam_forward(modules[True].model, nhwc_images, targets),
        modules[False].mixer.cam_forward(modules[False].model, images, targets),
    )
    torch.testing.assert_close(modules[True].model(nhwc_images), modules[False].model(images), rtol=1e-4, atol=1e-4)


def test_bad_cam_dtype_names_the_option(tiny_config):
    with pytest.raises(ValueError, match=r"mix\.cam_dtype"):
        build(tiny_config("mix.cam_dtype=int8", "logger=[]", "callbacks=[]"))


class PeakSwap(Mixer):
    """A CAM mixer written outside the package, as a user would add one (its function, here inline, and this
    class; then one export line and one YAML): each image shows its partner where the partner's CAM is above
    its mean, and the labels weigh the CAM mass there."""

    name = "peak_swap"

    def __init__(self, prob: float = 1.0, seed: int | None = None, **cam_options) -> None:
        super().__init__(prob, seed=seed)
        self.cam_forward = CamForward(**cam_options)
        self.seen_cams: list[torch.Tensor] = []

    def mix_batch(self, images, targets, cams, generator) -> MixedBatch:
        self.seen_cams.append(cams)
        partner = torch.randperm(len(targets), generator=generator).to(images.device)
        shown = cams[partner] > cams[partner].mean(dim=(1, 2), keepdim=True)
        mixed = torch.where(shown[:, None], images[partner], images)
        return MixedBatch(mixed, targets, targets[partner], *mask_weights(cams, partner, shown), partner)


def test_a_cam_mixer_needs_only_its_class_to_train_through_the_module(tiny_config):
    module, datamodule, trainer = build(tiny_config("trainer=debug", "logger=[]", "callbacks=[]"))
    hparams = module.hparams
    mix = {"_target_": f"{__name__}.PeakSwap", "cam_bn": "eval", "cam_resolution": 32}
    module = FGVCModule(hparams.model, mix, hparams.optim, hparams.num_classes, channels_last=True)
    before = module.model.head.weight.detach().clone()
    trainer.fit(module, datamodule=datamodule)
    (cams,) = module.mixer.seen_cams  # fast_dev_run: one training step, one CAM forward
    assert cams.shape == (16, 64, 64) and not cams.is_inference()
    torch.testing.assert_close(cams.sum(dim=(1, 2)), torch.ones(16))
    assert len({tuple(cam.flatten()[:50].tolist()) for cam in cams}) > 1  # the model's CAMs, one per image
    assert not torch.equal(module.model.head.weight, before)  # and the step trained on the mixed batch
