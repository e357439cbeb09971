"""Reliability: numerics that stay finite, NaN losses that stop or skip, atomic checkpoints,
unwritable outputs, bad options, and determinism. See docs/reliability.md for the full table."""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import fsspec.implementations.local
import pytest
import pytorch_lightning as pl
import torch
from helpers import CONFIG_DIR, TINY_SYNTHETIC, compose_config
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException
from PIL import Image
from torch.utils.data import Dataset

from fgvc_mix.data.resumable import EpochSampler, SeededSamples
from fgvc_mix.errors import UserError
from fgvc_mix.evaluation.checkpoints import load_checkpoint
from fgvc_mix.mixing import mixed_cross_entropy
from fgvc_mix.predict import predict
from fgvc_mix.train import build, check_output_dir, train
from fgvc_mix.training.module import FGVCModule
from fgvc_mix.training.output_check import check_can_create
from fgvc_mix.training.preemption import INTERRUPTED_EXIT_CODE
from fgvc_mix.training.resume_checks import check_resume

TESTS = str(Path(__file__).parent)


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


class RandomPerLoad(Dataset):
    """Each load draws from torch's global random state, as the training augmentation does."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(1)


def test_training_order_and_augmentation_depend_only_on_seed_epoch_and_sample():
    def order(epoch: int, skip: int = 0) -> list[tuple[int, int]]:
        sampler = EpochSampler(RandomPerLoad(), seed=3)
        sampler.set_epoch(epoch)
        sampler.skip_next(skip)
        first = list(sampler)
        assert len(list(sampler)) == 10  # the skip applies to one pass only
        return first

    assert order(1) == order(1) != order(2)
    assert order(1, skip=4) == order(1)[4:]
    samples = SeededSamples(RandomPerLoad(), seed=3)
    state = torch.get_rng_state()
    first = samples[(1, 7)]
    assert torch.equal(torch.get_rng_state(), state)  # training's own draws are left as they were
    torch.rand(5)
    assert torch.equal(samples[(1, 7)], first) and not torch.equal(samples[(2, 7)], first)
    assert torch.equal(samples[7], samples[(0, 7)])  # a plain index from Lightning's overfit_batches sampler


def test_training_batches_are_the_same_with_and_without_loader_workers(tiny_config):
    """Worker processes used to draw their own crops and flips, which a checkpoint cannot carry."""
    batches = {}
    for workers in (0, 2):
        _, datamodule, _ = build(tiny_config(f"dataset.num_workers={workers}", "logger=csv", "callbacks=[]"))
        batches[workers] = [images for images, _ in datamodule.train_dataloader()]
    assert len(batches[0]) == 3
    for zero, two in zip(batches[0], batches[2], strict=True):
        assert torch.equal(zero, two)


def test_a_mid_epoch_checkpoint_resumes_the_epoch_past_the_batches_it_trained(tiny_config):
    _, datamodule, _ = build(tiny_config("logger=csv", "callbacks=[]"))
    loader = datamodule.train_dataloader()
    loader.sampler.set_epoch(1)
    epoch_1 = [targets for _, targets in loader]
    datamodule.load_state_dict({"resume_epoch": 1, "resume_batches": 1})
    resumed = [targets for _, targets in datamodule.train_dataloader()]
    assert len(resumed) == 2 and all(torch.equal(a, b) for a, b in zip(resumed, epoch_1[1:], strict=True))
    assert len(list(datamodule.train_dataloader())) == 3  # only the resumed run's first epoch is shortened


RESUMABLE_RUN = [
    *TINY_SYNTHETIC,
    "dataset.num_workers=2",  # the default's loader workers, which used to make resuming inexact
    "optim.epochs=2",  # 3 batches an epoch
    "trainer.accelerator=cpu",
    "logger=csv",
    "callbacks.mixed_images.every_n_epochs=100",
    "~callbacks.label_noise",
]


def run_train(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m fgvc_mix.train`` in a process of its own, able to import ``helpers``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "fgvc_mix.train", *arguments]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def uninterrupted_weights(tmp_path_factory) -> dict[str, torch.Tensor]:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    result = run_train(*RESUMABLE_RUN, f"hydra.run.dir={run_dir}", cwd=run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["TERM", "KILL"])
def test_a_run_stopped_by_a_signal_resumes_to_bit_identical_weights(signal_name, uninterrupted_weights, tmp_path):
    """SIGTERM after step 4 (mid-epoch 1): saved there, marked interrupted, exit 143, the printed command
    resumes. kill -9 after step 4: resumed from the end of epoch 0. Both end as the uninterrupted run."""
    run_dir, last = tmp_path / "run", tmp_path / "run" / "checkpoints" / "last.ckpt"
    stop = ["+callbacks.stop._target_=helpers.sigterm.SignalAfterStep", "+callbacks.stop.step=4"]
    stopped = run_train(
        *RESUMABLE_RUN, *stop, f"+callbacks.stop.name={signal_name}", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    if signal_name == "TERM":
        assert stopped.returncode == INTERRUPTED_EXIT_CODE, stopped.stderr[-3000:]
        result = json.loads((run_dir / "metrics.json").read_text())
        assert result["status"] == "interrupted" and result["global_step"] == 4
        assert result["resume"] in stopped.stdout and torch.load(last, weights_only=False)["global_step"] == 4
        resume = shlex.split(result["resume"])[3:]  # the command as printed, after "python -m fgvc_mix.train"
    else:
        assert stopped.returncode == -signal.SIGKILL
        assert torch.load(last, weights_only=False)["global_step"] == 3  # the end of epoch 0
        resume = [*RESUMABLE_RUN, f"ckpt_path={last}", f"hydra.run.dir={run_dir}"]
    resumed = run_train(*resume, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
    weights = torch.load(last, weights_only=False)["state_dict"]
    for key, value in uninterrupted_weights.items():
        torch.testing.assert_close(weights[key], value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.epochs=0"], r"optim\.epochs=0 must be a whole number of at least 1"),
        (["label_smoothing=2"], r"label_smoothing=2 must be in \[0, 1\)"),
        (["label_smoothing=-0.1"], r"label_smoothing=-0\.1 must be in \[0, 1\)"),
        (["dataset.batch_size=0"], r"dataset\.batch_size=0 must be a whole number of at least 1"),
        (["seed=abc"], r"seed='abc' is not a whole number"),
        (["trainer.devices=99"], r"trainer\.devices=99 but this machine has \d+ CPU cores .*trainer\.devices to 1\.\."),
        (["trainer.devices=0"], r"trainer\.devices=0 but"),
    ],
)
def test_a_bad_run_option_is_refused_before_anything_starts(overrides, message, tiny_config):
    with pytest.raises(UserError, match=message):
        quiet(tiny_config, *overrides)


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory) -> bytes:
    """A SnapMix run's checkpoint (16 classes, one step), trained once for the tests below."""
    run_dir = tmp_path_factory.mktemp("trained")
    overrides = [*TINY_SYNTHETIC, "trainer=debug", "logger=csv", "callbacks=[]", "trainer.accelerator=cpu"]
    module, datamodule, trainer = build(compose_config(overrides, run_dir))
    trainer.fit(module, datamodule=datamodule)
    trainer.save_checkpoint(run_dir / "last.ckpt")
    GlobalHydra.instance().clear()
    return (run_dir / "last.ckpt").read_bytes()


@pytest.fixture
def saved_run(trained_checkpoint, tmp_path) -> Path:
    """That checkpoint as this test's tmp_path/checkpoints/last.ckpt, where ``ckpt_path=last`` looks."""
    path = tmp_path / "checkpoints" / "last.ckpt"
    path.parent.mkdir()
    path.write_bytes(trained_checkpoint)
    return path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset.num_classes=8"], r"num_classes=16 in the checkpoint, 8 in this run"),
        (["mix=cutmix"], r"mix\._target_=fgvc_mix\.mixing\.\w+ in the checkpoint, fgvc_mix\.mixing\.CutMix"),
        (["label_smoothing=0.1"], r"label_smoothing=0\.0 in the checkpoint, 0\.1 in this run"),
    ],
)
def test_a_resume_that_changes_what_the_run_trains_is_refused(overrides, message, saved_run, tiny_config, tmp_path):
    module, _, _ = quiet(tiny_config, *overrides)
    with pytest.raises(UserError, match=rf"ckpt_path={saved_run} was trained with other settings: .*{message}"):
        check_resume(saved_run, dict(module.hparams), tmp_path)
    same, _, _ = quiet(tiny_config)
    hparams = {**same.hparams, "model": {**same.hparams.model, "pretrained": True}}  # initial weights: replaced
    check_resume("last", hparams, tmp_path)


def test_a_truncated_checkpoint_is_named_and_a_failed_resume_writes_nothing(saved_run, tiny_config, tmp_path):
    saved_run.write_bytes(saved_run.read_bytes()[: saved_run.stat().st_size // 2])
    truncated = saved_run.read_bytes()
    expected = rf"{saved_run} cannot be read as a checkpoint \(.*\): the file is truncated or corrupt"
    with pytest.raises(UserError, match=expected):
        train(tiny_config("logger=csv", "callbacks=[]", "trainer.accelerator=cpu", f"ckpt_path={saved_run}"))
    assert saved_run.read_bytes() == truncated  # the user's file as it was, no training step taken
    with pytest.raises(UserError, match=expected):
        load_checkpoint(saved_run)  # evaluate, predict, export and label_noise load through it


def test_an_output_directory_that_cannot_be_created_is_refused_naming_the_option(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(SystemExit, match=rf"^Error: .* {blocker} is a file, not a folder; .* hydra\.sweep\.dir=<dir>$"):
        check_can_create(blocker / "sweep" / "0", "hydra.sweep.dir")
    check_can_create(tmp_path / "new" / "run", "hydra.run.dir")
    assert not (tmp_path / "new").exists()  # checked, not created: Hydra creates it


@pytest.mark.slow
def test_an_output_directory_that_cannot_be_created_is_one_error_line(tmp_path):
    """Hydra made the directory, and opened its log there, before the job: a traceback when it could not."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    command = [sys.executable, "-m", "fgvc_mix.train", f"hydra.run.dir={blocker / 'out'}"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: cannot create the output directory {blocker / 'out'}: {blocker} is a file, not a folder; "
        "choose another with hydra.run.dir=<dir>"
    )


def test_predict_goes_past_unreadable_images_and_names_each(saved_run, tmp_path, caplog):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    Image.new("RGB", (80, 60), "red").save(folder / "good.jpg")
    with caplog.at_level(logging.WARNING, logger="fgvc_mix.predict"):
        results = predict(saved_run, folder, top_k=2, accelerator="cpu")
    assert [path.name for path, _ in results] == ["good.jpg"]
    assert f"Left out {folder / 'empty.jpg'}: Image file is empty" in caplog.text
    assert f"Left out {folder / 'text.png'}: Not a readable image" in caplog.text
    assert "2 of 3 image files could not be read" in caplog.text
    (folder / "good.jpg").unlink()
    with pytest.raises(UserError, match=r"none of the 2 image files of images=.* could be read"):
        predict(saved_run, folder, accelerator="cpu")
