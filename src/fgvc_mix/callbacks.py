"""TensorBoard pictures of what the mixer feeds the model."""

from __future__ import annotations

import copy

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib import colormaps
from PIL import Image, ImageDraw
from pytorch_lightning.loggers import TensorBoardLogger
from torch import Tensor
from torchvision.utils import make_grid

from fgvc_mix.mixing import MixedBatch


class MixedImageGrid(pl.Callback):
    """Every ``every_n_epochs``, a grid of mixed training images with the CAM of each image's
    own label overlaid and the two label weights written on it (``train/mixed_images``).

    The mix is redrawn with a generator of its own (seeded by the epoch), so logging
    pictures never changes the boxes that training draws.
    """

    def __init__(self, every_n_epochs: int = 5, num_images: int = 8, display_size: int = 160) -> None:
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images
        self.display_size = display_size

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx != 0 or trainer.current_epoch % self.every_n_epochs or not trainer.is_global_zero:
            return
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers:
            return
        images, targets = (t[: self.num_images] for t in batch)
        mixer = copy.copy(pl_module.mixer)
        mixer.prob = 1.0
        mixer.generator = torch.Generator().manual_seed(trainer.current_epoch)
        with torch.no_grad():
            mixed = mixer(images, targets, pl_module.target_cams if mixer.needs_cams else None)
            cams = pl_module.target_cams(mixed.images, mixed.targets_a)
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
