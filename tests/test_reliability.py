"""Reliability: numerics that stay finite, NaN losses that stop or skip, atomic checkpoints,
unwritable outputs, bad options, and determinism. See docs/reliability.md for the full table."""

from __future__ import annotations

import math

import fsspec.implementations.local
import pytest
import pytorch_lightning as pl
import torch
from helpers import CONFIG_DIR
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException

from fgvc_mix.mixing import mixed_cross_entropy
from fgvc_mix.module import FGVCModule
from fgvc_mix.train import build, check_output_dir


def quiet(cfg_factory, *overrides):
    return build(cfg_factory(*overrides, "logger=csv", "callbacks=[]", "trainer.accelerator=cpu"))


@pytest.mark.parametrize("mix", ["snapmix", "cutmix", "mixup"])
def test_loss_stays_finite_for_degenerate_batches_and_bf16(mix, tiny_config):
    module, _, _ = quiet(tiny_config, f"mix={mix}", "mix.prob=1.0")
    module.train()
    cases = {
        "batch of one": (torch.randn(1, 3, 64, 64), torch.tensor([3])),
        "odd batch, all labels equal": (torch.randn(5, 3, 64, 64), torch.full((5,), 7)),
        "constant images (flat CAMs)": (torch.zeros(4, 3, 64, 64), torch.arange(4)),
    }
    for name, (images, targets) in cases.items():
        for autocast in (False, True):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                mixed = module.mixer(images, targets, module.model)
                loss = mixed_cross_entropy(module(mixed.images), mixed)
            assert torch.isfinite(loss), (name, autocast)
            assert torch.isfinite(mixed.lam_a).all() and torch.isfinite(mixed.lam_b).all()


class PoisonBatch(pl.Callback):
    """Turns one training batch into NaNs, as a corrupt sample or an overflow would."""

    def __init__(self, epoch: int, batch_idx: int) -> None:
        self.epoch, self.batch_idx = epoch, batch_idx

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch_idx:
            batch[0].fill_(float("nan"))


def finite_state(path) -> bool:
    state = torch.load(path, weights_only=False)["state_dict"]
    return all(torch.isfinite(v.float()).all() for v in state.values())


def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_good_checkpoint(tiny_config, tmp_path):
    module, datamodule, trainer = build(tiny_config("optim.epochs=3", "trainer.accelerator=cpu", "logger=csv"))
    trainer.callbacks.append(PoisonBatch(epoch=1, batch_idx=1))
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 4 \(batch 1\).*nonfinite_loss=skip"):
        trainer.fit(module, datamodule=datamodule)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 0 and finite_state(last)


def test_nan_loss_skip_drops_the_batch_and_trains_on(tiny_config, tmp_path):
    module, datamodule, trainer = build(
        tiny_config("optim.epochs=2", "trainer.accelerator=cpu", "logger=csv", "nonfinite_loss=skip")
    )
    trainer.callbacks.append(PoisonBatch(epoch=0, batch_idx=1))
    trainer.fit(module, datamodule=datamodule)
    assert module.skipped_batches == 1
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 1 and finite_state(last)


def test_interrupted_checkpoint_write_leaves_the_previous_one_intact(tiny_config, tmp_path, monkeypatch):
    module, datamodule, trainer = build(
        tiny_config("trainer=debug", "trainer.fast_dev_run=false", "optim.epochs=1", "logger=csv", "callbacks=[]")
    )
    trainer.fit(module, datamodule=datamodule)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    good = path.read_bytes()

    def fail_halfway(self, data):
        original_write(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    original_write = fsspec.implementations.local.LocalFileOpener.write
    monkeypatch.setattr(fsspec.implementations.local.LocalFileOpener, "write", fail_halfway)
    with torch.no_grad():
        module.model.head.weight.add_(1.0)
    with pytest.raises(OSError, match="No space"):
        trainer.save_checkpoint(path)
    assert path.read_bytes() == good


def test_unwritable_output_directory_is_reported_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match=r"cannot write to the output directory .*hydra\.run\.dir"):
        check_output_dir(blocker / "outputs")
    check_output_dir(tmp_path / "fine")  # a writable one passes and leaves no probe behind
    assert list((tmp_path / "fine").iterdir()) == []


@pytest.mark.parametrize("override", ["mix=snapmixx", "model=resnet5", "dataset=birds"])
def test_unknown_config_choice_lists_the_available_ones(override):
    GlobalHydra.instance().clear()
    with (
        initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"),
        pytest.raises(MissingConfigException, match="Available options"),
    ):
        compose("train", overrides=[override])
    GlobalHydra.instance().clear()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["mix.beta=0"], r"mix\.beta must be > 0"),
        (["mix=mixup", "mix.alpha=-1"], r"mix\.alpha must be > 0"),
        (["mix.cam_bn=train"], r"mix\.cam_bn must be one of"),
        (["nonfinite_loss=ignore"], "nonfinite_loss must be one of"),
    ],
)
def test_bad_values_are_rejected_before_training(overrides, message, tiny_config):
    with pytest.raises(ValueError, match=message):
        quiet(tiny_config, *overrides)


def test_resumed_ranks_keep_taking_the_same_mix_decisions(tiny_config, monkeypatch):
    """Rank 0's checkpoint carries the shared decision stream: every resumed rank continues it exactly."""
    images, targets = torch.randn(4, 3, 16, 16), torch.arange(4)

    def decisions(module) -> list[bool]:
        return [module.mixer(images, targets).box_a is not None for _ in range(30)]

    module, _, _ = quiet(tiny_config, "mix=cutmix", "mix.prob=0.5")
    module.setup("fit")
    decisions(module)  # the interrupted run's first steps
    checkpoint = {"global_step": 30}
    module.on_save_checkpoint(checkpoint)
    expected = decisions(module)  # what the uninterrupted run decides next
    for rank in (0, 1):
        monkeypatch.setattr(FGVCModule, "global_rank", property(lambda self, rank=rank: rank))
        resumed, _, _ = quiet(tiny_config, "mix=cutmix", "mix.prob=0.5")
        resumed.setup("fit")
        resumed.on_load_checkpoint(checkpoint)
        assert decisions(resumed) == expected, rank


def trained_state(tiny_config, *overrides):
    module, datamodule, trainer = build(
        tiny_config("trainer=debug", "trainer.fast_dev_run=3", "logger=csv", "callbacks=[]", *overrides)
    )
    trainer.fit(module, datamodule=datamodule)
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize(("mix", "workers"), [("none", 0), ("mixup", 0), ("cutmix", 2), ("snapmix", 0)])
def test_same_seed_gives_identical_training_on_cpu(mix, workers, tiny_config):
    overrides = [f"mix={mix}", "mix.prob=0.5" if mix != "none" else "seed=0", f"dataset.num_workers={workers}"]
    first = trained_state(tiny_config, *overrides)
    second = trained_state(tiny_config, *overrides)
    other_seed = trained_state(tiny_config, *overrides, "seed=1")
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0, msg=key)
    assert any(not torch.equal(first[k], other_seed[k]) for k in first if first[k].is_floating_point())
    assert not math.isnan(float(first["model.head.weight"].sum()))
