"""One LightningDataModule for every dataset, configured by ``conf/dataset/<name>.yaml``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from pytorch_lightning.trainer.states import TrainerFn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.transforms import v2

from fgvc_mix.data.device_decode import EncodedBatch, EncodedJpegs, check_decode, collate_encoded, decode_batch
from fgvc_mix.data.errors import DatasetError
from fgvc_mix.data.registry import build_dataset, dataset_entry
from fgvc_mix.data.resumable import EpochSampler, SeededSamples
from fgvc_mix.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    check_resize_mode,
    eval_transform,
    train_transform,
)

VAL_SOURCES = ("test", "official", "holdout")


class FGVCDataModule(pl.LightningDataModule):
    """Train / val / test loaders for ``name`` (a key of :data:`~fgvc_mix.data.registry.DATASETS`).

    ``val_source`` says what validation sees: ``test`` monitors the test split (the
    authors' protocol, who report the best test epoch), ``official`` the dataset's own
    validation split (Aircraft, Flowers with ``use_val``; the synthetic data), and
    ``holdout`` a stratified ``val_fraction`` of the training split held out with a
    fixed seed. ``options`` go to the dataset class (Aircraft's ``level``, the
    synthetic data's sizes, ``skip_bad_images``...). ``num_classes=None`` takes the classes the
    training split has (set in :meth:`setup`). ``resize`` is ``square`` or ``shorter``
    (see :mod:`fgvc_mix.data.transforms`). ``drop_last`` drops the last partial training
    batch; the authors keep it, and the paper recipes set ``dataset.drop_last=false``.
    ``decode`` is ``cpu`` (PIL in the loader workers) or ``gpu``: the workers read JPEG bytes and the
    training device decodes and transforms each batch (:mod:`fgvc_mix.data.device_decode`) in
    :meth:`on_before_batch_transfer`; code that iterates a loader itself calls :meth:`to_device`.
    """

    def __init__(
        self,
        name: str,
        num_classes: int | None,
        root: str | None = None,
        image_size: int = 448,
        resize_size: int = 512,
        resize: str = "square",
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        drop_last: bool = True,
        val_source: str = "test",
        val_fraction: float = 0.1,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        options: dict[str, Any] | None = None,
        decode: str = "cpu",
    ) -> None:
        super().__init__()
        on_disk = dataset_entry(name).on_disk
        if on_disk and root is None:
            raise DatasetError(f"dataset={name} needs dataset.root=<folder holding the {name} files>")
        check_decode(decode, on_disk=on_disk, name=name)
        if image_size > resize_size:
            raise DatasetError(
                f"dataset.image_size={image_size} (the crop) is larger than dataset.resize_size={resize_size}; "
                "set resize_size >= image_size"
            )
        check_resize_mode(resize)
        if val_source not in VAL_SOURCES:
            raise DatasetError(f"dataset.val_source must be one of {VAL_SOURCES}, got {val_source!r}")
        if not 0.0 < val_fraction < 1.0:
            raise DatasetError(f"dataset.val_fraction must be in (0, 1), got {val_fraction}")
        self.save_hyperparameters()
        self.datasets: dict[str, Dataset] = {}
        self.class_names: list[str] = []
        self.resume_at: tuple[int, int] | None = None  # (epoch, batches done) a checkpoint's training goes on from

    def transform(self, train: bool) -> v2.Compose:
        """The training (random crop, flip) or evaluation (centre crop) pipeline of these settings."""
        hp = self.hparams
        build_transform = train_transform if train else eval_transform
        return build_transform(hp.image_size, hp.resize_size, hp.mean, hp.std, resize=hp.resize)

    def _build(self, split: str, train: bool) -> Dataset:
        hp = self.hparams
        dataset = build_dataset(
            hp.name,
            hp.root,
            split,
            transform=None if hp.decode == "gpu" else self.transform(train),
            num_classes=hp.num_classes,
            image_size=hp.image_size,
            **(hp.options or {}),
        )
        if hp.decode == "gpu":
            return EncodedJpegs(dataset, hp.image_size, hp.resize_size, hp.resize, train)
        return dataset

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        hp = self.hparams
        train = self._build("train", train=True)
        test = self._build("test", train=False)
        found = len(train.classes)
        if hp.num_classes is None:  # counted from the data (dataset=folder); saved with the other settings
            hp.num_classes = found
        elif found != hp.num_classes:
            raise DatasetError(
                f"dataset.num_classes={hp.num_classes} but {hp.name} at {hp.root} has {found} classes; "
                f"set dataset.num_classes={found}"
            )
        if hp.val_source == "official":
            val = self._build("val", train=False)
        elif hp.val_source == "holdout":
            train_indices, val_indices = stratified_split(train.targets, hp.val_fraction, seed=0)
            val = Subset(self._build("train", train=False), val_indices)
            train = Subset(train, train_indices)
        else:
            val = test
        self.class_names = list(test.classes)
        self.datasets = {"train": train, "val": val, "test": test}

    def _loader(self, split: str, train: bool) -> DataLoader:
        hp = self.hparams
        dataset = self.datasets[split]
        # Under DDP, Lightning's sampler pads the evaluation splits with repeated samples so that
        # ranks get equal shares; an unrepeated sampler makes every test image count exactly once.
        distributed_eval = not train and torch.distributed.is_available() and torch.distributed.is_initialized()
        sampler = UnrepeatedDistributedSampler(dataset, shuffle=False) if distributed_eval else None
        if train:  # order and augmentation from (seed, epoch, sample): resuming is exact (data/resumable.py)
            seed = int(os.environ.get("PL_GLOBAL_SEED", 0))  # set by seed_everything, as Lightning's samplers read it
            ranks = (self.trainer.world_size, self.trainer.global_rank) if self.trainer is not None else (1, 0)
            sampler = EpochSampler(dataset, seed, *ranks)
            # Lightning makes the first iterator, and its workers draw indices, before it sets the epoch.
            epoch, done = self.resume_at or (self.trainer.current_epoch if self.trainer is not None else 0, 0)
            sampler.set_epoch(epoch)
            sampler.skip_next(done * hp.batch_size)
            self.resume_at = None
            dataset = SeededSamples(dataset, seed)
        return DataLoader(
            dataset,
            batch_size=hp.batch_size if train else (hp.eval_batch_size or hp.batch_size),
            sampler=sampler,
            drop_last=train and hp.drop_last,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=collate_encoded if hp.decode == "gpu" else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def state_dict(self) -> dict[str, Any]:
        """The epoch a resumed run trains and how many of its batches a checkpoint taken mid-epoch has done."""
        trainer = self.trainer
        if trainer is None or trainer.state.fn != TrainerFn.FITTING:
            return {}
        epoch, done = trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.completed
        mid_epoch = done < trainer.num_training_batches
        return {"resume_epoch": epoch if mid_epoch else epoch + 1, "resume_batches": done if mid_epoch else 0}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "resume_epoch" in state_dict:
            self.resume_at = (state_dict["resume_epoch"], state_dict["resume_batches"])

    def to_device(self, batch: tuple[Any, Tensor], device: torch.device) -> tuple[Tensor, Tensor]:
        """A loader's batch as (images, targets) on ``device``; with ``decode=gpu`` the images are decoded there."""
        images, targets = batch
        if isinstance(images, EncodedBatch):
            images = decode_batch(images, device, self.hparams.mean, self.hparams.std)
        return images.to(device), targets.to(device)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Decode a ``decode=gpu`` batch on the trainer's device (decode_jpeg takes the bytes on the CPU).

        The targets stay for Lightning's own (non-blocking) transfer. Anything else passes unchanged:
        ``decode=cpu`` batches, the model summary's example input.
        """
        if isinstance(batch, tuple | list) and batch and isinstance(batch[0], EncodedBatch):
            images, targets = batch
            hp = self.hparams
            return decode_batch(images, self.trainer.strategy.root_device, hp.mean, hp.std), targets
        return batch


def stratified_split(targets: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, held out) with ``fraction`` of every class held out (at least one if it has two)."""
    rng = np.random.default_rng(seed)
    targets_array = np.asarray(targets)
    held_out: list[int] = []
    for label in np.unique(targets_array):
        members = rng.permutation(np.flatnonzero(targets_array == label))
        count = min(len(members) - 1, max(1, round(fraction * len(members))))
        held_out += members[:count].tolist()
    held = set(held_out)
    return [i for i in range(len(targets)) if i not in held], sorted(held_out)
