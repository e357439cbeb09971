"""The datamodule on a tiny CUB tree in the official layout, and the real-dataset training path."""

from __future__ import annotations

import pytest
import torch
from helpers import compose_config

from fgvc_mix.data import DatasetError, FGVCDataModule
from fgvc_mix.data.datamodule import stratified_split
from fgvc_mix.train import train


def cub_module(root, **overrides) -> FGVCDataModule:
    settings = dict(
        name="cub", root=str(root), num_classes=3, image_size=16, resize_size=20, batch_size=2, num_workers=0
    )
    return FGVCDataModule(**{**settings, **overrides})


def test_cub_loaders_give_normalised_crops(cub_root):
    datamodule = cub_module(cub_root)
    datamodule.setup("fit")
    datamodule.setup("test")  # idempotent
    images, targets = next(iter(datamodule.train_dataloader()))
    assert images.shape == (2, 3, 16, 16) and images.dtype == torch.float32 and targets.dtype == torch.int64
    assert datamodule.datasets["val"] is datamodule.datasets["test"]  # val_source=test: the authors' protocol
    assert datamodule.class_names[0] == "001.Black_footed_Albatross"


@pytest.mark.parametrize("drop_last", [True, False])
def test_drop_last_reaches_only_the_training_loader(cub_root, drop_last):
    """``dataset.drop_last=false`` keeps the last partial training batch, as the authors' loader does."""
    datamodule = cub_module(cub_root, batch_size=4, drop_last=drop_last)  # 6 training images: batches of 4 and 2
    datamodule.setup("fit")
    assert [len(targets) for _, targets in datamodule.train_dataloader()] == ([4] if drop_last else [4, 2])
    assert not datamodule.val_dataloader().drop_last


def test_holdout_validation_is_stratified_and_disjoint(cub_root):
    datamodule = cub_module(cub_root, val_source="holdout", val_fraction=0.34)
    datamodule.setup("fit")
    train_indices = set(datamodule.datasets["train"].indices)
    val_indices = set(datamodule.datasets["val"].indices)
    assert train_indices.isdisjoint(val_indices) and len(train_indices | val_indices) == 6
    train_part, held = stratified_split([0, 0, 0, 0, 1, 1, 1, 1, 2], 0.25, seed=0)
    assert sorted(train_part + held) == list(range(9))
    assert sorted([0, 0, 0, 0, 1, 1, 1, 1, 2][i] for i in held) == [0, 1]  # one per class; singletons stay in train


def test_synthetic_builds_through_the_registry_without_a_root():
    sizes = {"train_size": 6, "val_size": 3, "test_size": 4}
    datamodule = FGVCDataModule(
        name="synthetic", num_classes=3, image_size=32, resize_size=32, val_source="official", options=sizes
    )
    datamodule.setup("fit")
    assert [len(datamodule.datasets[s]) for s in ("train", "val", "test")] == [6, 3, 4]
    image, label = datamodule.datasets["val"][0]
    assert image.shape == (3, 32, 32) and label == datamodule.datasets["val"].targets[0]
    assert len(datamodule.class_names) == 3


def test_wrong_class_count_and_bad_options_are_reported(cub_root, tmp_path):
    with pytest.raises(DatasetError, match=r"set dataset\.num_classes=3"):
        cub_module(cub_root, num_classes=200).setup("fit")
    with pytest.raises(DatasetError, match=r"dataset\.root"):
        FGVCDataModule(name="cub", num_classes=200)
    with pytest.raises(DatasetError, match="choose one of"):
        FGVCDataModule(name="birds", num_classes=200, root=str(tmp_path))
    with pytest.raises(ValueError, match="val_source"):
        cub_module(cub_root, val_source="train")
    with pytest.raises(DatasetError):
        cub_module(tmp_path / "nowhere").setup("fit")


def test_train_on_a_real_dataset_layout_with_a_resnet(cub_root, tmp_path):
    cfg = compose_config(
        [
            "dataset=cub",
            f"dataset.root={cub_root}",
            "dataset.num_classes=3",
            "dataset.image_size=32",
            "dataset.resize_size=36",
            "dataset.batch_size=3",
            "dataset.num_workers=0",
            "model=resnet18",
            "model.pretrained=false",
            "optim=paper",
            "trainer=debug",
        ],
        tmp_path,
    )
    metrics = train(cfg)
    assert set(metrics) >= {"test/acc", "test/acc_top5", "test/acc_macro"}
