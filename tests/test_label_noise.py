"""The label-noise meter: ground-truth shares, the two labelling rules, the callback and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from helpers.datasets import lines, write_cub_style
from torch.utils.data import Subset
from torchvision.transforms import v2

from fgvc_mix.data.cub import CUB200
from fgvc_mix.data.synthetic import SyntheticFGVC
from fgvc_mix.data.transforms import eval_transform
from fgvc_mix.errors import UserError
from fgvc_mix.evaluation.dashboards import LabelNoiseMeter
from fgvc_mix.evaluation.label_noise import (
    checkpoint_label_noise,
    draw_pairs,
    masked_samples,
    measure,
    part_mask_source,
    variant_cam_forwards,
)
from fgvc_mix.mixing import cutmix, snapmix
from fgvc_mix.mixing.cam_forward import CAM_BN_MODES as CAM_BN
from fgvc_mix.mixing.label_noise import area_weights, label_noise, semantic_shares
from fgvc_mix.train import build
from fgvc_mix.training.module import FGVCModule


def box(x1: int, y1: int, x2: int, y2: int) -> list[int]:
    return [x1, y1, x2, y2]


def test_shares_on_hand_built_masks():
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[0, 1:3, 1:3] = True  # 4 pixels, all inside image 0's box_a
    masks[1, 5:7, 5:7] = True  # 4 pixels, all inside the box_b taken from image 1
    masks[2, 0, 0:4] = True  # 4 pixels, half of them inside image 2's box_a
    partner = torch.tensor([1, 2, 0])
    box_a = torch.tensor([box(0, 0, 4, 4), box(0, 0, 0, 0), box(0, 0, 2, 8)])
    box_b = torch.tensor([box(4, 4, 8, 8), box(0, 0, 8, 8), box(0, 0, 1, 1)])
    share_a, share_b = semantic_shares(masks, partner, box_a, box_b)
    torch.testing.assert_close(share_a, torch.tensor([0.0, 1.0, 0.5]))  # image 1 is unmixed: all survives
    torch.testing.assert_close(share_b, torch.tensor([1.0, 1.0, 0.0]))  # image 0's parts miss box_b of image 2


def test_empty_part_mask_is_a_clear_error():
    masks = torch.zeros(2, 4, 4)
    masks[0, 0, 0] = 1
    boxes = torch.tensor([box(0, 0, 2, 2)] * 2)
    with pytest.raises(ValueError, match=r"images \[1\] are empty"):
        semantic_shares(masks, torch.tensor([1, 0]), boxes, boxes)


def test_area_weights_are_cutmix_weights_for_equal_boxes():
    images, targets = torch.rand(6, 3, 16, 16), torch.arange(6)
    mixed = cutmix(images, targets, per_sample=True, generator=torch.Generator().manual_seed(3))
    lam_a, lam_b = area_weights(mixed.box_a, mixed.box_b, 16, 16)
    torch.testing.assert_close(lam_a, mixed.lam_a, rtol=0, atol=1e-7)
    torch.testing.assert_close(lam_b, mixed.lam_b, rtol=0, atol=1e-7)


def test_draw_pairs_draws_what_snapmix_draws():
    images, targets = torch.rand(8, 3, 24, 24), torch.arange(8)
    cams = torch.full((8, 24, 24), 1 / 24**2)
    mixed = snapmix(images, targets, cams, per_sample=True, generator=torch.Generator().manual_seed(5))
    partner, box_a, box_b = draw_pairs(8, 24, 24, generator=torch.Generator().manual_seed(5))
    assert torch.equal(partner, mixed.partner) and torch.equal(box_a, mixed.box_a) and torch.equal(box_b, mixed.box_b)


def random_case(batch: int = 64, size: int = 32, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    corner = torch.randint(size - 4, (batch, 2), generator=generator)
    rows, cols = torch.arange(size), torch.arange(size)
    in_rows = (rows >= corner[:, :1]) & (rows < corner[:, :1] + 4)
    in_cols = (cols >= corner[:, 1:]) & (cols < corner[:, 1:] + 4)
    masks = in_rows[:, :, None] & in_cols[:, None, :]  # a 4 x 4 "part" per image, as small as real parts
    targets = torch.randint(8, (batch,), generator=generator)
    partner, box_a, box_b = draw_pairs(batch, size, size, generator=generator)
    return masks, targets, partner, box_a, box_b


def test_uniform_cams_give_cutmix_weights_so_equal_errors():
    masks, targets, partner, box_a, box_b = random_case()
    uniform = torch.full(masks.shape, 1.0 / masks[0].numel())
    report = label_noise(uniform, masks, targets, partner, box_a, box_b)
    assert report.snapmix.mae == pytest.approx(report.cutmix.mae, abs=1e-6)
    assert report.mae_ratio == pytest.approx(1.0, abs=1e-5)
    assert report.num_pairs + report.num_same_label == len(targets) and report.num_same_label > 0


def test_cams_equal_to_the_masks_make_snapmix_exact():
    masks, targets, partner, box_a, box_b = random_case()
    oracle = masks.float() / masks.float().sum(dim=(1, 2), keepdim=True)
    report = label_noise(oracle, masks, targets, partner, box_a, box_b)
    assert report.snapmix.mae == pytest.approx(0.0, abs=1e-6)
    assert report.snapmix.correlation == pytest.approx(1.0, abs=1e-6)
    assert report.cutmix.mae > 0.2 and report.mae_ratio < 1e-4
    assert "SnapMix MAE / CutMix MAE" in report.table()


def test_masked_samples_follow_subsets_and_move_masks_with_the_transform():
    flip = v2.Compose([v2.ToImage(), v2.RandomHorizontalFlip(p=1.0), v2.ToDtype(torch.float32, scale=True)])
    dataset = SyntheticFGVC("train", num_samples=12, transform=flip)
    subset = Subset(Subset(dataset, [9, 3, 7, 1]), [2, 0])  # covers images 7 and 9
    assert part_mask_source(subset)[1] == [7, 9]
    images, targets, masks = masked_samples(subset, 2, seed=0)
    flipped = {i: [t.flip(-1) for t in dataset.sample_with_mask(i)[::2]] for i in (7, 9)}  # image, part mask
    sources = [next(i for i, (im, ma) in flipped.items() if torch.equal(images[k], im)) for k in range(2)]
    assert sorted(sources) == [7, 9]
    for k, i in enumerate(sources):
        assert torch.equal(masks[k], flipped[i][1]) and int(targets[k]) == dataset.targets[i]
    assert torch.equal(masked_samples(subset, 2, seed=0)[0], images)  # fixed by the seed
    with pytest.raises(ValueError, match="num_pairs=5"):
        masked_samples(subset, 5)
    with pytest.raises(ValueError, match="no truth to score"):
        masked_samples(torch.utils.data.TensorDataset(torch.zeros(4, 3, 8, 8)), 2)


def test_meter_logs_during_training_and_cli_scores_the_checkpoint(tiny_config, tmp_path):
    cfg = tiny_config(
        "optim.epochs=1",
        "trainer.accelerator=cpu",
        "logger=csv",
        "~callbacks.progress_bar",
        "callbacks.label_noise.num_pairs=32",  # the meter is a default callback
    )
    module, datamodule, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    logged = trainer.logged_metrics
    for name in ("train/label_mae_snapmix", "train/label_mae_cutmix", "train/label_mae_ratio"):
        assert name in logged and 0.0 <= float(logged[name]) < 2.0, name

    last = tmp_path / "checkpoints" / "last.ckpt"
    report = checkpoint_label_noise(last, num_pairs=32, seed=1)
    assert report.num_pairs + report.num_same_label == 32 and 0.0 < report.cutmix.mae < 1.0

    command = [sys.executable, "-m", "fgvc_mix.label_noise", f"ckpt_path={last}", "num_pairs=16"]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    run = subprocess.run([*command, f"hydra.run.dir={tmp_path}/cli"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert "SnapMix MAE / CutMix MAE" in run.stdout
    assert all(f"{row} " in run.stdout for row in ("cutmix", "snapmix", "snapmix half_res", "snapmix bf16"))

    # The same weights read as a CUB model: scored against the tree's keypoints and boxes.
    checkpoint = torch.load(last, weights_only=False)
    checkpoint["datamodule_hyper_parameters"].update(name="cub", root="/nowhere", options={}, val_source="test")
    torch.save(checkpoint, tmp_path / "cub.ckpt")
    with pytest.raises(ValueError, match="dataset root /nowhere"):
        checkpoint_label_noise(tmp_path / "cub.ckpt")
    cub = write_cub_with_parts(tmp_path / "CUB_200_2011", num_classes=16)
    cli = [*command[:-2], f"ckpt_path={tmp_path / 'cub.ckpt'}", f"dataset.root={cub}", "truth=parts", "num_pairs=16"]
    run = subprocess.run([*cli, "cam_variants=null", f"hydra.run.dir={tmp_path}/cub"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "truth=parts" in run.stdout and "(16 pairs with different labels" in run.stdout
    assert "half_res" not in run.stdout and "bf16" not in run.stdout  # the exact row alone


def write_cub_with_parts(base, num_classes: int):
    """A CUB tree of 2 images per class (one train, one test), each 8 x 8 with its bird box and two visible parts."""
    classes = [(str(c), f"{c:03d}.Bird") for c in range(1, num_classes + 1)]
    images = [
        (str(n), f"{c:03d}.Bird/{n}.jpg", str(c), n % 2) for n in range(1, 2 * num_classes + 1) for c in [(n + 1) // 2]
    ]
    write_cub_style(base, images, classes)
    lines(base / "bounding_boxes.txt", [f"{i} 1 1 6 6" for i, *_ in images])
    lines(base / "parts" / "part_locs.txt", [f"{i} {k} {k + 1} {k + 2} 1" for i, *_ in images for k in (1, 2)])
    return base


def test_meter_does_nothing_without_truth_and_says_so_once(caplog):
    class Trainer:
        current_epoch, is_global_zero = 0, True
        datamodule = type("DataModule", (), {"datasets": {"train": torch.utils.data.TensorDataset(torch.zeros(4))}})

    meter = LabelNoiseMeter()
    with caplog.at_level("INFO", logger="fgvc_mix.evaluation.dashboards"):
        for _ in range(2):
            meter.on_train_epoch_end(Trainer(), pl_module=None)  # no truth: no error
    assert [r.getMessage() for r in caplog.records] == [
        "LabelNoiseMeter: TensorDataset has no truth (part masks, keypoints or boxes); "
        "label noise is not measured in this run"
    ]
    with pytest.raises(ValueError, match="every_n_epochs"):
        LabelNoiseMeter(every_n_epochs=0)
    with pytest.raises(ValueError, match="split must be 'train' or 'val'"):
        LabelNoiseMeter(split="test")


def test_meter_takes_its_split_and_truth_kind_and_a_flaw_turns_it_off(tmp_path, caplog):
    cub = CUB200(write_cub_with_parts(tmp_path, num_classes=2), "train", transform=eval_transform(8, 8))
    datamodule = type("DataModule", (), {"datasets": {"train": None, "val": cub}})
    trainer = type("Trainer", (), {"datamodule": datamodule})
    images, targets, masks = LabelNoiseMeter(num_pairs=2, split="val", truth="box")._training_samples(trainer)
    assert sorted(targets.tolist()) == [0, 1]
    assert images.shape == (2, 3, 8, 8) and masks.sum().item() == 2 * 36  # the 6 x 6 box of each image
    assert LabelNoiseMeter(num_pairs=2, split="train")._training_samples(trainer) is None
    lines(tmp_path / "bounding_boxes.txt", [f"{i} 100 100 6 6" for i in range(1, 5)])  # every box off its image
    cub = CUB200(tmp_path, "train", transform=eval_transform(8, 8))
    datamodule.datasets["val"] = cub
    meter = LabelNoiseMeter(num_pairs=2, split="val", truth="box")
    with caplog.at_level("WARNING", logger="fgvc_mix.evaluation.dashboards"):
        assert meter._training_samples(trainer) is None and meter._training_samples(trainer) is None
    assert [r.getMessage() for r in caplog.records if r.name == "fgvc_mix.evaluation.dashboards"] == [
        "LabelNoiseMeter: none of the 2 images of the split has truth=box inside its crop; "
        "label noise is not measured in this run"
    ]


def test_measure_uses_eval_mode_so_cam_bn_and_chunking_do_not_matter():
    model = {"_target_": "fgvc_mix.models.build_classifier", "name": "small_cnn", "backbone_options": {"width": 8}}
    optim = {"optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}}
    mixes = [{"_target_": "fgvc_mix.mixing.SnapMix", "cam_bn": bn} for bn in CAM_BN]
    modules = [FGVCModule(model, mix, optim, 16, channels_last=False) for mix in mixes]
    for layer in modules[0].modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.5, 0.5)  # running statistics unlike any batch's
    modules[1].load_state_dict(modules[0].state_dict())
    images, targets, masks = masked_samples(SyntheticFGVC("test", 24, transform=eval_transform(64, 64)), 24)
    whole = measure(modules[0], images, masks, targets, chunk_size=24)
    chunked = measure(modules[1], images, masks, targets, chunk_size=5)  # cam_bn=eval folds BatchNorm: rounding only
    for rule in ("cutmix", "snapmix"):
        assert getattr(chunked, rule).mae == pytest.approx(getattr(whole, rule).mae, rel=1e-5)
        assert getattr(chunked, rule).correlation == pytest.approx(getattr(whole, rule).correlation, rel=1e-5)
    assert all(module.training for module in modules)  # eval mode only while measuring


def test_cam_variants_are_scored_next_to_the_exact_cams_on_the_same_pairs():
    model = {"_target_": "fgvc_mix.models.build_classifier", "name": "small_cnn", "backbone_options": {"width": 8}}
    optim = {"optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}}
    trained_half_res = {"_target_": "fgvc_mix.mixing.SnapMix", "cam_resolution": 32}
    module = FGVCModule(model, trained_half_res, optim, 16, channels_last=False)
    images, targets, masks = masked_samples(SyntheticFGVC("test", 24, transform=eval_transform(64, 64)), 24)
    variants = {"half_res": {"cam_resolution": 32}, "bf16": {"cam_dtype": "bfloat16"}, "same": {}}
    variants["half_scale"] = {"cam_scale": 0.5}  # the shipped half_res: half of these 64-px images' side
    report = measure(module, images, masks, targets, cam_variants=variants)
    assert list(report.variants) == ["half_res", "bf16", "same", "half_scale"]
    assert report.variants["same"] == report.snapmix  # no option: the exact CAMs again
    assert report.variants["half_scale"] == report.variants["half_res"]
    assert report.variants["half_res"] != report.snapmix and report.variants["bf16"] != report.snapmix
    assert module.mixer.cam_forward.resolution == 32  # the module's own CAM forward is left as it was
    assert "snapmix half_res" in report.table() and "snapmix bf16" in report.table()
    with pytest.raises(ValueError, match="cam_variants"):
        measure(module, images, masks, targets, cam_variants={"stale": {"cam_every_n": 2}})
    with pytest.raises(ValueError, match=r"mix\.cam_dtype"):
        measure(module, images, masks, targets, cam_variants={"int": {"cam_dtype": "int8"}})


def test_a_cam_scale_variant_follows_the_image_size_and_is_checked():
    """``half_res`` (``cam_scale: 0.5``) is half resolution on any checkpoint, not a 1x1 map on 128-px crops."""
    assert variant_cam_forwards({"half_res": {"cam_scale": 0.5}}, side=128)["half_res"].resolution == 64
    assert variant_cam_forwards({"half_res": {"cam_scale": 0.5}}, side=448)["half_res"].resolution == 224
    for options in ({"cam_scale": 0.0}, {"cam_scale": 1.5}, {"cam_scale": 0.5, "cam_resolution": 32}):
        with pytest.raises(UserError, match=r"cam_variants\.bad\.cam_scale"):
            variant_cam_forwards({"bad": options}, side=64)
