"""The mistakes a new user makes first, each answered by one message that names the fix."""

from __future__ import annotations

from urllib.error import URLError

import pytest
import torch

from fgvc_mix.train import build


def test_trainer_max_epochs_apart_from_optim_epochs_fails_naming_optim_epochs(tiny_config):
    with pytest.raises(ValueError, match=r"set optim\.epochs=1 instead of trainer\.max_epochs=1"):
        build(tiny_config("trainer.max_epochs=1", "optim.epochs=20"))


@pytest.mark.parametrize("optim", ["adamw", "cosine"])
def test_the_trainer_and_the_schedule_both_follow_optim_epochs(optim, tiny_config):
    module, _, trainer = build(tiny_config(f"optim={optim}", "optim.epochs=3", "logger=csv", "callbacks=[]"))
    scheduler = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert trainer.max_epochs == scheduler.T_max == 3


def test_fast_dev_run_builds_with_the_epoch_check(tiny_config):
    _, _, trainer = build(tiny_config("trainer=debug", "optim.epochs=7"))
    assert trainer.fast_dev_run and trainer.max_epochs == 1  # Lightning's own one-batch run


def test_offline_pretrained_weights_fail_with_one_message_naming_the_options(tiny_config, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    hub = tmp_path / "hub"  # an empty torchvision cache, so the download is attempted
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    monkeypatch.setattr(torch.hub, "urlopen", no_network)
    with pytest.raises(OSError) as raised:
        build(tiny_config("model=resnet18", "trainer=debug"))
    message = str(raised.value)
    assert "model.pretrained=false" in message and "model.weights_path=<file>" in message
    assert str(hub / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "name resolution" in message and raised.value.__cause__ is None
