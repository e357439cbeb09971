"""TensorBoard dashboards (issue 18): only real points on the charts, one x-axis (the global step),
readable HParams columns and run names, a readable mixed-image grid, λ histograms of mixed batches only."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from helpers import TINY_SYNTHETIC, compose_config
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from PIL import ImageDraw
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams.backend_context import _sort_and_reduce_to_hparams_limit

from fgvc_mix.evaluation.dashboards import BOX_COLOUR, CAPTION_FONT_SIZE, MixedImageGrid
from fgvc_mix.mixing import MixedBatch
from fgvc_mix.train import build
from fgvc_mix.training.config import RUN_NAME_LIMIT, run_name
from fgvc_mix.training.hparams import HPARAMS_TICKED, declare_hparams, experiment_params

EPOCHS = 2
RUN_OVERRIDES = [
    *TINY_SYNTHETIC,  # 48 training images in batches of 16: 3 steps per epoch
    f"optim.epochs={EPOCHS}",
    "trainer.accelerator=cpu",
    "trainer.log_every_n_steps=1",
    "mix.prob=0.5",  # some batches mixed, some not
    "~callbacks.progress_bar",
    "~callbacks.label_noise",
]


class MixedSteps(pl.Callback):
    """Counts the training steps whose batch the mixer mixed, and the global step at each epoch's end."""

    def __init__(self) -> None:
        self.mixed = self.steps = 0
        self.epoch_end_steps: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.steps += 1
        self.mixed += outputs["partner"] is not None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epoch_end_steps.append(trainer.global_step)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny SnapMix run at prob 0.5, trained and tested as ``train.train`` does: (metrics, run dir, counts)."""
    out = tmp_path_factory.mktemp("run")
    cfg = compose_config(RUN_OVERRIDES, out)
    expected_run = out / "tensorboard" / run_name(HydraConfig.get().job.override_dirname)
    module, datamodule, trainer = build(cfg)
    counts = MixedSteps()
    trainer.callbacks.append(counts)
    trainer.fit(module, datamodule=datamodule)
    (metrics,) = trainer.test(module, datamodule=datamodule)
    GlobalHydra.instance().clear()
    assert [p for p in (out / "tensorboard").iterdir()] == [expected_run]  # one run, named after the overrides
    events = EventAccumulator(str(expected_run), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    events.Reload()
    return metrics, events, counts


def test_scalar_tags_hold_only_real_points(tiny_run):
    metrics, events, _ = tiny_run
    for tag in ("test/acc", "test/acc_top5", "test/acc_macro"):
        (point,) = events.Scalars(tag)  # no placeholder 0.0 at step 0 from the HParams declaration
        assert point.value == pytest.approx(metrics[tag], abs=1e-6), tag
    assert len(events.Scalars("val/acc")) == EPOCHS  # one per validation, nothing more
    # The HParams tab still has its metric columns.
    experiment, _ = logged_hparams(events)
    assert [m.name.tag for m in experiment.metric_infos] == ["val/acc", "test/acc", "test/acc_top5", "test/acc_macro"]


def logged_hparams(events: EventAccumulator) -> tuple[api_pb2.Experiment, dict]:
    """A run's HParams entry from its event file: the experiment (columns) and the session's values."""
    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    return experiment, dict(start.hparams)


def columns_as_shown(experiment: api_pb2.Experiment) -> list[str]:
    """The HParams tab's column order: TensorBoard's own sort (the backend's, asked for up to 1000 columns by the
    tab), of which the tab ticks the first ``HPARAMS_TICKED``."""
    served = api_pb2.Experiment()
    served.CopyFrom(experiment)
    _sort_and_reduce_to_hparams_limit(served, 1000)
    return [h.name for h in served.hparam_infos]


def test_hparams_tab_leads_with_what_the_run_sets(tiny_run):
    _, events, _ = tiny_run
    experiment, values = logged_hparams(events)
    overridden = [o.split("=")[0].replace(".", "/") for o in RUN_OVERRIDES if not o.startswith("~")]
    choices = ["dataset", "mix", "model", "optim"]  # the demo's options; no experiment= file
    assert columns_as_shown(experiment) == [*sorted([*overridden, "seed"]), *choices]  # nothing else, overrides first
    assert values["mix/prob"].number_value == 0.5 and values["seed"].number_value == 0
    assert values["mix"].string_value == "snapmix_scratch" and values["model"].string_value == "small_cnn"
    assert "optim/backbone_lr_scale" not in values  # small_cnn trains from scratch: no scale is applied


def test_hparams_tab_ticks_the_overrides_and_seed(tmp_path):
    cfg = compose_config(["mix=cutmix", "mix.prob=0.5", "dataset.root=/data/cub"], tmp_path)
    params, varied = experiment_params(cfg, pretrained_backbone=False)
    GlobalHydra.instance().clear()
    logger = TensorBoardLogger(tmp_path, name="tensorboard", version="run")
    declare_hparams(logger, params, varied)
    logger.experiment.flush()
    events = EventAccumulator(str(tmp_path / "tensorboard" / "run"))
    events.Reload()
    shown = columns_as_shown(logged_hparams(events)[0])
    assert shown[:HPARAMS_TICKED] == ["mix", "mix/prob", "seed", "dataset", "model"]  # ticked: on screen
    assert shown[HPARAMS_TICKED:] == ["optim"]  # a path (dataset.root) is not what the run varies


def test_backbone_lr_scale_shows_the_scale_applied(tmp_path):
    cfg = compose_config(["optim.backbone_lr_scale=0.5"], tmp_path)
    from_scratch, _ = experiment_params(cfg, pretrained_backbone=False)
    pretrained, _ = experiment_params(cfg, pretrained_backbone=True)
    GlobalHydra.instance().clear()
    assert from_scratch["optim/backbone_lr_scale"] == 1.0  # FGVCModule scales only a pretrained backbone
    assert pretrained["optim/backbone_lr_scale"] == 0.5


def test_every_chart_uses_the_global_step(tiny_run):
    _, events, counts = tiny_run
    assert counts.epoch_end_steps == [3, 6]  # global steps, not the epochs 0 and 1
    assert [e.step for e in events.Scalars("train/lam_gap_to_area")] == counts.epoch_end_steps
    for tag in ("train/lam_a", "train/lam_b", "train/lam_sum"):
        assert [e.step for e in events.Histograms(tag)] == counts.epoch_end_steps, tag


def test_weight_histograms_count_only_mixed_batches(tiny_run):
    _, events, counts = tiny_run
    assert 0 < counts.mixed < counts.steps  # prob 0.5 left some batches unmixed
    for tag in ("train/lam_a", "train/lam_b", "train/lam_sum"):
        logged = sum(e.histogram_value.num for e in events.Histograms(tag))
        assert logged == 16 * counts.mixed, tag  # an unmixed batch would add 16 values at 1 (lam_a) or 0 (lam_b)


def test_run_names_follow_the_overrides(tmp_path):
    assert run_name("") == "default"
    assert run_name("mix.prob=0.5,seed=1") == "mix.prob=0.5,seed=1"
    assert run_name("dataset=cub,experiment=paper/cub_r50") == "dataset=cub,experiment=paper_cub_r50"  # one folder
    long_a, long_b = "x" * 300 + "a", "x" * 300 + "b"
    assert len(run_name(long_a)) == RUN_NAME_LIMIT and run_name(long_a) != run_name(long_b)
    cfg = compose_config(["seed=1", "mix.prob=0.5", "dataset.root=/data/cub", "ckpt_path=last"], tmp_path)
    assert cfg.logger.tensorboard.version == "mix.prob=0.5,seed=1"  # paths (root, resume) are not what a run varies
    assert compose_config([], tmp_path).logger.tensorboard.version == "default"
    GlobalHydra.instance().clear()


def test_hparams_list_the_experiment_not_the_plumbing(tmp_path):
    params, varied = experiment_params(
        compose_config(["seed=3", "mix=cutmix", "trainer.max_epochs=20"], tmp_path), False
    )
    assert varied == ["seed", "mix", "trainer/max_epochs"]  # the overrides, in the given order
    choices = {"dataset": "synthetic", "model": "small_cnn", "optim": "adamw"}
    assert params == {"seed": 3, "mix": "cutmix", "trainer/max_epochs": 20, **choices}  # the full config: .hydra/
    params, varied = experiment_params(compose_config([], tmp_path), False)
    GlobalHydra.instance().clear()
    assert varied == ["seed"] and params == {"seed": 0, "mix": "snapmix_scratch", **choices}


def grey_batch(box_a: torch.Tensor | None, mask: torch.Tensor | None = None) -> MixedBatch:
    images = torch.zeros(8, 3, 64, 64)  # normalised 0: mid-grey after denormalising with mean 0.5
    targets = torch.arange(8)
    lam_a, lam_b = torch.full((8,), 0.7), torch.full((8,), 0.3)
    return MixedBatch(images, targets, (targets + 1) % 8, lam_a, lam_b, box_a=box_a, mask=mask)


def test_grid_tiles_are_large_and_outline_the_pasted_box():
    grid_cb = MixedImageGrid()
    box = torch.tensor([[8, 16, 40, 48]]).repeat(8, 1)  # x1, y1, x2, y2 in the 64-px images
    cams = torch.rand(8, 64, 64)
    grid = grid_cb.render(grey_batch(box), cams, [0.5] * 3, [0.25] * 3)
    size, pad, caption = grid_cb.display_size, 4, 2 * CAPTION_FONT_SIZE + 10
    assert size >= 192
    panel_w, panel_h = 2 * size + pad, caption + size  # the image beside its CAM, under the caption
    assert tuple(grid.shape) == (3, 4 * panel_h + 5 * pad, 2 * panel_w + 3 * pad)  # 8 samples, 2 per row
    scale = size // 64
    top, left = pad + caption, pad  # the first sample's image tile
    yellow = torch.tensor(BOX_COLOUR, dtype=grid.dtype)
    assert torch.equal(grid[:, top + 16 * scale, left + 8 * scale], yellow)  # the box's top-left corner
    assert torch.equal(grid[:, top + 48 * scale - 1, left + 20 * scale], yellow)  # its bottom edge
    assert not torch.equal(grid[:, top + 30 * scale, left + 24 * scale], yellow)  # not filled
    assert not torch.equal(grid[:, top + 4 * scale, left + 4 * scale], yellow)  # nothing outside it
    image_tile = grid[:, top : top + size, left : left + size]
    assert (image_tile == 127).all(dim=0).float().mean() > 0.9  # the image itself: grey, not under a CAM
    no_box = grid_cb.render(grey_batch(None), cams, [0.5] * 3, [0.25] * 3)  # a mask mixer or Mixup: no outline
    assert not (no_box == yellow[:, None, None]).all(dim=0).any()


def test_grid_captions_name_the_classes(monkeypatch):
    captions: list[str] = []
    text = ImageDraw.ImageDraw.text
    monkeypatch.setattr(
        ImageDraw.ImageDraw, "text", lambda self, xy, s, *a, **k: captions.append(s) or text(self, xy, s, *a, **k)
    )
    names = [f"species_{k}" for k in range(8)]
    MixedImageGrid().render(grey_batch(None), torch.rand(8, 64, 64), [0.5] * 3, [0.25] * 3, names)
    assert captions[:2] == ["a: species_0  0.70", "b: species_1  0.30"]
    assert len(captions) == 16


def test_demo_logs_the_grid_every_two_epochs(tmp_path):
    cfg = compose_config([], tmp_path)
    GlobalHydra.instance().clear()
    grid = MixedImageGrid(every_n_epochs=cfg.callbacks.mixed_images.every_n_epochs)
    grid_epochs = [epoch for epoch in range(cfg.optim.epochs) if grid.logs_at(epoch, cfg.optim.epochs)]
    assert len(grid_epochs) >= 10  # the 20-epoch demo shows how the mix and its CAMs evolve, not 4 snapshots
    assert grid_epochs[0] == 0 and grid_epochs[-1] == cfg.optim.epochs - 1  # the final model's mixes are shown


def test_grid_outlines_a_mask_mixers_region():
    grid_cb = MixedImageGrid()
    mask = torch.zeros(8, 64, 64, dtype=torch.bool)
    mask[:, :, 32:] = True  # the partner shows in the right half
    grid = grid_cb.render(grey_batch(None, mask), torch.rand(8, 64, 64), [0.5] * 3, [0.25] * 3)
    size, pad, caption = grid_cb.display_size, 4, 2 * CAPTION_FONT_SIZE + 10
    tile = grid[:, pad + caption : pad + caption + size, pad : pad + size]
    outlined = (tile == torch.tensor(BOX_COLOUR, dtype=grid.dtype)[:, None, None]).all(dim=0)
    columns = outlined.any(dim=0).nonzero().flatten().tolist()
    assert columns == [size // 2, size // 2 + 1]  # the region's left edge, 2 px wide, inside the region
    assert outlined[:, size // 2].all()  # top to bottom; the image's own frame is not outlined
