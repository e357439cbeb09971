"""TensorBoard dashboards: what the mixer feeds the model, its label weights, the test confusion matrix."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib import colormaps
from PIL import Image, ImageDraw
from pytorch_lightning.loggers import TensorBoardLogger
from torch import Tensor
from torchvision.utils import make_grid

from fgvc_mix.mixing import CamForward, MixedBatch, box_areas
from fgvc_mix.models.batchnorm import eval_mode
from fgvc_mix.reports import confusion_counts, confusion_matrix_figure


class MixedImageGrid(pl.Callback):
    """Every ``every_n_epochs``, a grid of mixed training images with the CAM of each image's
    own label overlaid and the two label weights written on it (``train/mixed_images``).

    The mix is redrawn with a generator of its own (seeded by the epoch), so logging
    pictures never changes the boxes or mix decisions that training draws. Only rank 0
    draws the grid, so its CAM forwards run with BatchNorm in eval mode (running
    statistics): a train-mode forward would all-reduce under ``trainer.sync_batchnorm``
    and hang, waiting for ranks that never join. The pictured CAMs and SnapMix weights
    therefore come from the running statistics, not from the batch statistics that
    training's ``mix.cam_bn=batch`` uses.
    """

    def __init__(self, every_n_epochs: int = 5, num_images: int = 8, display_size: int = 160) -> None:
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images
        self.display_size = display_size

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx != 0 or trainer.current_epoch % self.every_n_epochs:
            return
        loggers = _tensorboards(trainer)
        if not loggers:
            return
        images, targets = (t[: self.num_images] for t in batch)
        generator = torch.Generator().manual_seed(trainer.current_epoch)
        with torch.no_grad(), eval_mode(pl_module.model):
            mixed = pl_module.mixer.mix(images, targets, pl_module.model, generator=generator)
            cams = CamForward(cam_bn="eval")(pl_module.model, mixed.images, mixed.targets_a)
        datamodule = trainer.datamodule
        grid = self.render(mixed, cams, datamodule.hparams.mean, datamodule.hparams.std)
        for logger in loggers:
            logger.experiment.add_image("train/mixed_images", grid, trainer.global_step)

    def render(self, mixed: MixedBatch, cams: Tensor, mean, std) -> Tensor:
        """(3, H, W) grid: each image denormalised, CAM in jet at 40%, ``a:<label> <lam_a>`` and ``b:...`` on top."""
        images = mixed.images.detach().float().cpu()
        images = images * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
        heat = cams.cpu() / cams.cpu().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
        jet = torch.from_numpy(colormaps["jet"](heat.numpy())[..., :3]).permute(0, 3, 1, 2).float()
        blended = (0.6 * images.clamp(0, 1) + 0.4 * jet).clamp(0, 1)
        tiles = []
        for i in range(blended.shape[0]):
            array = (blended[i].permute(1, 2, 0).numpy() * 255).astype("uint8")
            tile = Image.fromarray(array).resize((self.display_size, self.display_size), Image.NEAREST)
            draw = ImageDraw.Draw(tile)
            draw.text((2, 1), f"a:{int(mixed.targets_a[i])} {float(mixed.lam_a[i]):.2f}", fill=(255, 255, 255))
            draw.text((2, 12), f"b:{int(mixed.targets_b[i])} {float(mixed.lam_b[i]):.2f}", fill=(255, 255, 255))
            tiles.append(torch.from_numpy(np.array(tile)).permute(2, 0, 1))
        return make_grid(torch.stack(tiles), nrow=4, padding=2)


def _tensorboards(trainer: pl.Trainer) -> list[TensorBoardLogger]:
    return [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)] if trainer.is_global_zero else []


class MixingDashboard(pl.Callback):
    """Per epoch: histograms of ``lam_a``, ``lam_b`` and ``lam_a + lam_b``, and the mean gap between
    the assigned weights and the area-based weights of the same boxes (``train/lam_gap_to_area``:
    zero for CutMix, SnapMix's departure from area labelling); after testing, the confusion matrix.
    """

    def __init__(self) -> None:
        self.weights: list[tuple[Tensor, Tensor]] = []
        self.gaps: list[Tensor] = []
        self.confusion: Tensor | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not isinstance(outputs, dict) or "lam_a" not in outputs:
            return
        lam_a, lam_b = outputs["lam_a"].float().cpu(), outputs["lam_b"].float().cpu()
        self.weights.append((lam_a, lam_b))
        if outputs.get("box_a") is not None:
            pixels = batch[0].shape[-2] * batch[0].shape[-1]
            area_b = box_areas(outputs["box_b"]).float().cpu() / pixels
            area_a = 1.0 - box_areas(outputs["box_a"]).float().cpu() / pixels
            self.gaps.append(((lam_a - area_a).abs() + (lam_b - area_b).abs()) / 2)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        if self.weights:
            lam_a = torch.cat([a for a, _ in self.weights])
            lam_b = torch.cat([b for _, b in self.weights])
            for logger in _tensorboards(trainer):
                for name, values in (("lam_a", lam_a), ("lam_b", lam_b), ("lam_sum", lam_a + lam_b)):
                    logger.experiment.add_histogram(f"train/{name}", values, trainer.current_epoch)
                if self.gaps:
                    gap = float(torch.cat(self.gaps).mean())
                    logger.experiment.add_scalar("train/lam_gap_to_area", gap, trainer.current_epoch)
        self.weights, self.gaps = [], []

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module) -> None:
        classes = pl_module.hparams.num_classes
        self.confusion = torch.zeros(classes, classes, dtype=torch.long, device=pl_module.device)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.confusion += confusion_counts(batch[1], outputs, self.confusion.shape[0])

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        confusion = trainer.strategy.reduce(self.confusion, reduce_op="sum").cpu()  # every rank's share
        names = pl_module.hparams.class_names or [str(k) for k in range(confusion.shape[0])]
        for logger in _tensorboards(trainer):
            logger.experiment.add_figure(
                "test/confusion_matrix", confusion_matrix_figure(confusion, names), trainer.global_step
            )
