"""Checkpoints written by other versions: loaded when they can be, refused with one message naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from helpers import TINY_SYNTHETIC, compose_config
from hydra.core.global_hydra import GlobalHydra

from fgvc_mix.evaluation.checkpoints import load_checkpoint
from fgvc_mix.train import train
from fgvc_mix.training.module import FGVCModule


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The checkpoint of a one-epoch synthetic run trained channels_last (the default)."""
    output_dir = tmp_path_factory.mktemp("run")
    overrides = ["optim.epochs=1", "trainer.accelerator=cpu", "logger=csv", "callbacks=[]", "channels_last=true"]
    cfg = compose_config([*TINY_SYNTHETIC, *overrides, "+trainer.enable_progress_bar=false"], output_dir)
    try:
        train(cfg)
    finally:
        GlobalHydra.instance().clear()
    (checkpoint,) = output_dir.rglob("*.ckpt")  # callbacks=[]: Lightning's own end-of-epoch checkpoint
    return checkpoint


def edited(trained: Path, tmp_path: Path, edit) -> Path:
    """A copy of the trained checkpoint after ``edit(checkpoint)``, as another version might have written it."""
    checkpoint = torch.load(trained, map_location="cpu", weights_only=False)
    edit(checkpoint)
    path = tmp_path / "edited.ckpt"
    torch.save(checkpoint, path)
    return path


def test_a_checkpoint_from_before_channels_last_loads_nchw_with_the_same_predictions(trained, tmp_path):
    old = edited(trained, tmp_path, lambda checkpoint: checkpoint["hyper_parameters"].pop("channels_last"))
    with pytest.raises(TypeError, match="channels_last"):  # what Lightning's loader alone does with it
        FGVCModule.load_from_checkpoint(old, map_location="cpu")
    module, datamodule = load_checkpoint(old)
    reference, _ = load_checkpoint(trained)
    assert module.hparams.channels_last is False and reference.hparams.channels_last is True
    first_conv = [next(p for p in m.model.parameters() if p.dim() == 4) for m in (module, reference)]
    assert first_conv[0].is_contiguous() and first_conv[1].is_contiguous(memory_format=torch.channels_last)
    assert not first_conv[1].is_contiguous()  # so the check above tells the two layouts apart
    datamodule.setup("test")
    images, _ = next(iter(datamodule.test_dataloader()))
    with torch.no_grad():
        torch.testing.assert_close(module(images), reference(images))


def test_a_checkpoint_lacking_a_required_setting_is_refused_naming_the_file_and_the_setting(trained, tmp_path):
    path = edited(trained, tmp_path, lambda checkpoint: checkpoint["hyper_parameters"].pop("optim"))
    with pytest.raises(ValueError, match=r"edited\.ckpt cannot be loaded: its hyper-parameters lack optim") as raised:
        load_checkpoint(path)
    assert "another version of fgvc_mix" in str(raised.value) and raised.value.__cause__ is None


@pytest.mark.parametrize(
    ("mix", "reason"),
    [
        ({"_target_": "fgvc_mix.mixing.RemovedMix"}, "Error locating target 'fgvc_mix.mixing.RemovedMix'"),
        # CutMix took cam_bn before the CAM options moved to the CAM-forward object
        ({"_target_": "fgvc_mix.mixing.CutMix", "cam_bn": "batch"}, "unexpected keyword argument 'cam_bn'"),
    ],
)
def test_settings_that_no_longer_build_a_module_are_refused_naming_the_file(trained, tmp_path, mix, reason):
    path = edited(trained, tmp_path, lambda checkpoint: checkpoint["hyper_parameters"].update(mix=mix))
    with pytest.raises(ValueError, match=r"edited\.ckpt cannot be loaded: its hyper-parameters do not build") as raised:
        load_checkpoint(path)
    message = str(raised.value)
    assert reason in message and "HYDRA_FULL_ERROR" not in message and "\n" not in message


def test_weights_that_do_not_fit_the_model_are_refused_naming_the_keys(trained, tmp_path):
    def renamed_and_reshaped(checkpoint):
        weights = checkpoint["state_dict"]
        weights["model.head.old_weight"] = weights.pop("model.head.weight")
        weights["model.head.bias"] = torch.zeros(3)

    with pytest.raises(ValueError, match=r"edited\.ckpt cannot be loaded: its weights do not fit") as raised:
        load_checkpoint(edited(trained, tmp_path, renamed_and_reshaped))
    message = str(raised.value)
    assert "missing (1): model.head.weight;" in message and "unexpected (1): model.head.old_weight;" in message
    assert "stored vs model shape (1): model.head.bias (3,) vs (16,)" in message


@pytest.mark.parametrize("initial_weights", ["download", "file"])
def test_a_checkpoint_of_a_pretrained_model_loads_without_the_network_or_the_initial_weights(
    trained, tmp_path, monkeypatch, initial_weights
):
    """Its own weights replace the ImageNet or ``weights_path`` ones, so evaluating needs neither."""
    model = {"_target_": "fgvc_mix.models.build_classifier", "name": "resnet18", "pretrained": True}
    model["weights_path"] = str(tmp_path / "deleted_after_training.pt") if initial_weights == "file" else None
    stored = torch.load(trained, map_location="cpu", weights_only=False)
    num_classes = stored["hyper_parameters"]["num_classes"]
    trained_module = FGVCModule(
        {**model, "pretrained": False, "weights_path": None},
        stored["hyper_parameters"]["mix"],
        stored["hyper_parameters"]["optim"],
        num_classes,
        channels_last=False,
    )

    def edit(checkpoint):
        checkpoint["hyper_parameters"].update(model=model, channels_last=False)
        checkpoint["state_dict"] = trained_module.state_dict()

    path = edited(trained, tmp_path, edit)

    def no_network(*args, **kwargs):
        raise OSError("no network in this test")  # as urllib fails offline

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", no_network)  # what WeightsEnum calls
    module, _ = load_checkpoint(path)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(module(images), trained_module.eval()(images))
    with pytest.raises(OSError):  # what building the model outside a checkpoint load still does
        FGVCModule(model, stored["hyper_parameters"]["mix"], stored["hyper_parameters"]["optim"], num_classes,
                   channels_last=False)  # fmt: skip
