"""The opt-in compiled CAM forward (``mix.cam_compile``) gives the eager CAMs, leaves BatchNorm statistics alone
and training eager."""

from __future__ import annotations

import pytest
import torch
from hydra.errors import ConfigCompositionException
from torch._dynamo.utils import counters

from fgvc_mix.models.batchnorm import batchnorm_buffers
from fgvc_mix.models.cam_compile import compile_cam_forward
from fgvc_mix.train import build
from fgvc_mix.training.module import FGVCModule

MODEL = {"_target_": "fgvc_mix.models.build_classifier", "name": "small_cnn", "pretrained": False}
OPTIM = {"optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}}


@pytest.mark.slow
@pytest.mark.parametrize("cam_bn", ["batch", "eval"])
def test_compiled_cam_forward_gives_the_eager_cams(cam_bn):
    torch.manual_seed(0)
    mix = {"_target_": "fgvc_mix.mixing.SnapMix", "cam_bn": cam_bn}
    eager = FGVCModule(MODEL, mix, OPTIM, num_classes=4, channels_last=True).train()
    compiled = FGVCModule(MODEL, mix, OPTIM, num_classes=4, channels_last=True).train()
    compiled.load_state_dict(eager.state_dict())
    compile_cam_forward(compiled.model)
    images = eager.in_model_layout(torch.randn(4, 3, 32, 32))
    targets = torch.tensor([0, 1, 2, 3])
    statistics = batchnorm_buffers(compiled.model, clone=True)

    torch.testing.assert_close(
        compiled.mixer.cam_forward(compiled.model, images, targets),
        eager.mixer.cam_forward(eager.model, images, targets),
    )
    for after, before in zip(batchnorm_buffers(compiled.model), statistics, strict=True):
        assert torch.equal(after, before)  # the CAM forward never updates running statistics

    frames = counters["frames"]["total"]
    logits = compiled.model.forward_heads(images)["main"]  # with gradients: eager, nothing new compiled
    torch.testing.assert_close(logits, eager.model.forward_heads(images)["main"])
    assert logits.requires_grad and counters["frames"]["total"] == frames


@pytest.mark.slow
def test_mix_cam_compile_reaches_the_model_through_the_config(tiny_config):
    overrides = ("mix.prob=1.0", "trainer=debug", "logger=[]", "callbacks=[]")
    module, datamodule, trainer = build(tiny_config(*overrides, "mix.cam_compile=true"))
    assert not getattr(module.model, "cam_forward_compiled", False)  # compiled by the first CAM forward, not before
    frames = counters["frames"]["total"]
    trainer.fit(module, datamodule=datamodule)  # one mixed SnapMix step
    assert module.model.cam_forward_compiled and counters["frames"]["total"] > frames

    eager, _, _ = build(tiny_config(*overrides))
    assert not eager.mixer.cam_forward.compile  # the default stays eager
    eager.load_state_dict(module.state_dict())
    module.train()
    eager.train()
    images, targets = next(iter(datamodule.train_dataloader()))
    images = module.in_model_layout(images)
    torch.testing.assert_close(
        module.mixer.cam_forward(module.model, images, targets),
        eager.mixer.cam_forward(eager.model, images, targets),
        rtol=1e-4,
        atol=1e-6,
    )
    assert not getattr(eager.model, "cam_forward_compiled", False)


def test_mixers_without_a_cam_forward_refuse_mix_cam_compile(tiny_config):
    with pytest.raises(ConfigCompositionException, match="cam_compile"):
        tiny_config("mix=cutmix", "mix.cam_compile=true")
