"""The training slice end to end: configs compose, every mixer trains, checkpoints evaluate, TensorBoard logs."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from helpers import CONFIG_DIR, compose_config
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fgvc_mix.evaluation.checkpoints import evaluate, load_checkpoint
from fgvc_mix.evaluation.dashboards import MixedImageGrid
from fgvc_mix.train import build, train
from fgvc_mix.training.mix_options import cnn_mix_options
from fgvc_mix.training.module import FGVCModule

GROUPS = ("dataset", "model", "mix", "optim", "trainer", "logger", "callbacks")
DASHBOARDS = Path(__file__).resolve().parents[1] / "docs" / "dashboards.md"


def documented_tags() -> list[re.Pattern]:
    """The tags docs/dashboards.md names: its code spans, ``<name>`` standing for one path segment."""
    spans = re.findall(r"`([^`\s]+)`", DASHBOARDS.read_text())
    return [re.compile(re.sub(r"<[^>]+>", "[^/]+", re.escape(span))) for span in spans]


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group", GROUPS)
def test_every_config_group_option_composes(group, tmp_path):
    options = group_options(group)
    assert len(options) >= 2 or group == "callbacks"
    for option in options:
        cfg = compose_config([f"{group}={option}", "dataset.root=/data/somewhere"], tmp_path)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        assert resolved[group] is not None
        if group == "mix":
            mixer = instantiate(cfg.mix)
            assert option.startswith(mixer.name)
        if group == "model":
            model = instantiate(cfg.model, num_classes=7, pretrained=False)
            size = 80 if option == "inception_v3" else 64  # Inception-v3 needs >= 75 px
            assert model(torch.randn(2, 3, size, size)).shape == (2, 7)


def test_default_config_is_the_synthetic_snapmix_demo(tmp_path):
    cfg = compose_config([], tmp_path)
    assert cfg.dataset.name == "synthetic" and cfg.mix._target_.endswith("SnapMix")
    assert cfg.trainer.accelerator == "auto" and cfg.trainer.max_epochs == cfg.optim.epochs


class TrainingOutputs(pl.Callback):
    """Keeps what each training step returned (loss and label weights)."""

    def __init__(self) -> None:
        self.outputs: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.outputs.append(outputs)


@pytest.mark.parametrize("mix", cnn_mix_options())  # every conf/mix file a CNN can train; ~1.5 s each
def test_fast_dev_run_trains_with_each_mixer(mix, tiny_config):
    prob = "mix.prob=1.0" if mix != "none" else "mix.prob=0.0"
    module, datamodule, trainer = build(tiny_config(f"mix={mix}", prob, "trainer=debug"))
    initial = {key: value.clone() for key, value in module.model.state_dict().items()}
    recorder = TrainingOutputs()
    trainer.callbacks.append(recorder)
    trainer.fit(module, datamodule=datamodule)
    (metrics,) = trainer.test(module, datamodule=datamodule)
    (step,) = recorder.outputs
    assert torch.isfinite(step["loss"]) and math.isfinite(metrics["test/loss"])
    # the mixer mixed (a partner's label carries weight) or, with mix=none, left every batch as it was
    assert bool((step["lam_b"] > 0).any()) == (mix != "none")
    changed = [key for key, value in module.model.state_dict().items() if not torch.equal(value, initial[key])]
    assert "head.weight" in changed  # the optimiser step reached the classifier


def batchnorm_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


@pytest.mark.parametrize("cam_bn", ["batch", "eval"])
def test_cam_forward_leaves_batchnorm_statistics_untouched(cam_bn, tiny_config):
    module, datamodule, _ = build(tiny_config(f"mix.cam_bn={cam_bn}", "logger=[]", "callbacks=[]"))
    module.train()
    images, targets = next(iter(datamodule.train_dataloader()))
    before = batchnorm_state(module.model)
    assert before
    cams = module.mixer.cam_forward(module.model, images, targets)
    after = batchnorm_state(module.model)
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert module.model.training
    torch.testing.assert_close(cams.sum(dim=(1, 2)), torch.ones(len(targets)))
    # batch mode normalises with the batch's statistics, exactly as the train-mode forward of training does
    features = module.model.forward_features(images) if cam_bn == "batch" else None
    if features is not None:
        from fgvc_mix.mixing import class_activation_maps

        expected = class_activation_maps(features, module.model.head.weight, module.model.head.bias, targets, (64, 64))
        torch.testing.assert_close(cams, expected)


def test_snapmix_training_step_updates_batchnorm_once(tiny_config):
    module, datamodule, _ = build(tiny_config("logger=[]", "callbacks=[]"))
    module.train()
    batch = next(iter(datamodule.train_dataloader()))
    counters = [m.num_batches_tracked.clone() for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    module.training_step(batch, 0)
    after = [m.num_batches_tracked for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(int(a) == int(b) + 1 for a, b in zip(after, counters, strict=True))


def test_checkpoint_evaluates_and_tensorboard_has_scalars_hparams_images(tiny_config, tmp_path):
    cfg = tiny_config(
        "optim.epochs=2",
        "trainer.accelerator=cpu",
        "callbacks.mixed_images.every_n_epochs=1",
        "trainer.log_every_n_steps=1",
        "mix.prob=1.0",  # every step mixed: a gap to the area weights in each epoch
    )
    metrics = train(cfg)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.is_file() and list((tmp_path / "checkpoints").glob("best-epoch*.ckpt"))

    evaluated = evaluate(last, {"num_workers": 0}, accelerator="cpu")
    for name in ("test/acc", "test/acc_top5", "test/acc_macro"):
        assert evaluated[name] == pytest.approx(metrics[name], abs=1e-6)

    # One TensorBoard run, named after the overrides (fit and test may each open an event file in it).
    (run_dir,) = Path(tmp_path, "tensorboard").iterdir()
    assert list(run_dir.glob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    patterns = documented_tags()
    shown = [tag for kind in ("scalars", "images", "histograms") for tag in tags[kind]]
    assert [tag for tag in shown if not any(p.fullmatch(tag) for p in patterns)] == [], "not in docs/dashboards.md"
    for scalar in ("train/loss_step", "train/loss_epoch", "val/acc", "val/acc_macro", "test/acc", "lr-AdamW/backbone"):
        assert scalar in tags["scalars"], scalar
    assert "train/mixed_images" in tags["images"] and "test/confusion_matrix" in tags["images"]
    assert {"train/lam_a", "train/lam_b", "train/lam_sum"} <= set(tags["histograms"])
    gaps = [e.value for e in accumulator.Scalars("train/lam_gap_to_area")]
    assert len(gaps) == 2 and min(gaps) > 0.01, gaps  # SnapMix departs from area weights (CutMix: 0)
    assert {"train/label_mae_snapmix", "train/label_mae_cutmix"} <= set(tags["scalars"])
    assert len(accumulator.Images("train/mixed_images")) == 2  # one per epoch
    hparams = accumulator.PluginTagToContent("hparams")
    assert b"test/acc" in hparams["_hparams_/experiment"]  # the HParams tab's metric columns
    assert b"mix/prob" in hparams["_hparams_/session_start_info"]  # a key the run overrides


def test_checkpoint_from_another_class_count_is_rejected(tiny_config, tmp_path):
    cfg = tiny_config("optim.epochs=1", "trainer.accelerator=cpu", "logger=csv")
    train(cfg)
    last = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=False)
    checkpoint["datamodule_hyper_parameters"]["num_classes"] = 9
    other = tmp_path / "other.ckpt"
    torch.save(checkpoint, other)
    with pytest.raises(ValueError, match="16-class model"):
        load_checkpoint(other)
    with pytest.raises(FileNotFoundError, match="ckpt_path"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_bad_options_fail_before_training(tiny_config):
    with pytest.raises(ValueError, match="resize_size"):
        build(tiny_config("dataset.image_size=96"))
    with pytest.raises(ValueError, match=r"mix\.prob"):
        build(tiny_config("mix.prob=1.5"))
    with pytest.raises(ValueError, match="test_ckpt"):
        build(tiny_config("test_ckpt=first"))


def test_a_callback_or_logger_set_to_null_is_switched_off(tiny_config):
    """Not built: a None among the callbacks crashed the run (``'NoneType' object has no attribute ...``)."""
    _, _, trainer = build(tiny_config("callbacks.mixed_images=null", "logger.tensorboard=null"))
    assert not any(isinstance(c, MixedImageGrid) for c in trainer.callbacks) and None not in trainer.callbacks
    assert not trainer.loggers


def test_module_rebuilds_from_its_hyperparameters(tiny_config):
    module, _, _ = build(tiny_config("logger=[]", "callbacks=[]"))
    clone = FGVCModule(**module.hparams)
    assert type(clone.mixer) is type(module.mixer) and clone.hparams.class_names == module.hparams.class_names


def test_channels_last_has_one_default_in_the_config(tiny_config):
    cfg = tiny_config("logger=[]", "callbacks=[]")
    assert cfg.channels_last is True  # conf/train.yaml owns the default...
    module, _, _ = build(cfg)
    assert module.hparams.channels_last is True  # ...train.build passes it on...
    with pytest.raises(TypeError, match="channels_last"):  # ...and the module has no default of its own
        FGVCModule(**{key: value for key, value in module.hparams.items() if key != "channels_last"})


def test_mid_level_branch_trains_and_reports_each_head(tiny_config, tmp_path):
    cfg = tiny_config(
        "model.mid_level=true",
        "model.mid_level_channels=16",
        "optim.epochs=1",
        "trainer.accelerator=cpu",
        "logger=csv",
        "callbacks=[]",
    )
    metrics = train(cfg)
    assert {"test/acc", "test/main/acc", "test/mid/acc", "test/main/acc_macro"} <= set(metrics)


def test_cam_resolution_runs_the_cam_forward_on_a_smaller_copy(tiny_config):
    module, _, _ = build(tiny_config("mix.cam_resolution=32", "logger=csv", "callbacks=[]"))
    module.train()
    widths = []
    handle = module.model.backbone.register_forward_hook(lambda layer, inputs, output: widths.append(inputs[0].shape))
    cams = module.mixer.cam_forward(module.model, torch.randn(4, 3, 64, 64), torch.arange(4))
    handle.remove()
    assert widths == [(4, 3, 32, 32)] and cams.shape == (4, 64, 64)
    torch.testing.assert_close(cams.sum(dim=(1, 2)), torch.ones(4))
    with pytest.raises(ValueError, match=r"mix\.cam_resolution"):
        build(tiny_config("mix.cam_resolution=4", "logger=csv", "callbacks=[]"))
