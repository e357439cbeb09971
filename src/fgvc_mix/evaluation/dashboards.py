"""TensorBoard dashboards: what the mixer feeds the model, its label weights, the test confusion matrix."""

from __future__ import annotations

import logging

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont
from pytorch_lightning.loggers import TensorBoardLogger
from torch import Tensor
from torchvision.utils import make_grid

from fgvc_mix.errors import UserError
from fgvc_mix.evaluation.label_noise import SNAPMIX_BETA, masked_samples, measure, truth_source
from fgvc_mix.evaluation.reports import confusion_counts, confusion_matrix_figure
from fgvc_mix.mixing import CamForward, MixedBatch, box_areas
from fgvc_mix.models.batchnorm import eval_mode

log = logging.getLogger(__name__)

BOX_COLOUR = (255, 255, 0)  # yellow: visible on photos and on the grey demo background
CAPTION_FONT_SIZE = 14


class MixedImageGrid(pl.Callback):
    """Every ``every_n_epochs`` and in the last epoch, a grid of mixed training images (``train/mixed_images``): each
    image with its pasted box outlined, beside the CAM of its own label over the image, under
    both labels' class names and weights.

    The mix is redrawn with a generator of its own (seeded by the epoch), so logging
    pictures never changes the boxes or mix decisions that training draws. Only rank 0
    draws the grid, so its CAM forwards run with BatchNorm in eval mode (running
    statistics): a train-mode forward would all-reduce under ``trainer.sync_batchnorm``
    and hang, waiting for ranks that never join. The pictured CAMs and SnapMix weights
    therefore come from the running statistics, not from the batch statistics that
    training's ``mix.cam_bn=batch`` uses.
    """

    def __init__(self, every_n_epochs: int = 5, num_images: int = 8, display_size: int = 192) -> None:
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images
        self.display_size = display_size

    def logs_at(self, epoch: int, max_epochs: int) -> bool:
        """Every ``every_n_epochs``-th epoch, and the last one, so the final model's mixes are shown."""
        return epoch % self.every_n_epochs == 0 or epoch == max_epochs - 1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx != 0 or not self.logs_at(trainer.current_epoch, trainer.max_epochs):
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
        hparams = datamodule.hparams
        grid = self.render(mixed, cams, hparams.mean, hparams.std, pl_module.hparams.class_names)
        for logger in loggers:
            logger.experiment.add_image("train/mixed_images", grid, trainer.global_step)

    def render(self, mixed: MixedBatch, cams: Tensor, mean, std, class_names: list[str] | None = None) -> Tensor:
        """(3, H, W) uint8 grid, two samples per row. A sample is two ``display_size`` tiles: the mixed
        image with ``box_a`` (where the partner was pasted) outlined, and the image at half strength
        under the CAM of its own label in jet; above them ``a: <class> <lam_a>`` and ``b: ...``. Mask mixers
        (no box) get their mask's edge drawn instead; Mixup, which has neither, gets no outline."""
        images = mixed.images.detach().float().cpu()
        images = (images * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]).clamp(0, 1)
        heat = cams.cpu() / cams.cpu().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
        jet = torch.from_numpy(colormaps["jet"](heat.numpy())[..., :3]).permute(0, 3, 1, 2).float()
        overlays = 0.5 * images + 0.5 * jet
        font = ImageFont.load_default(size=CAPTION_FONT_SIZE)
        caption = 2 * CAPTION_FONT_SIZE + 10
        size, gap = self.display_size, 4
        height, width = images.shape[-2:]
        resample = Image.Resampling.NEAREST if size >= max(height, width) else Image.Resampling.LANCZOS
        scale = torch.tensor([size / width, size / height, size / width, size / height])
        edges = _mask_edges(mixed.mask, size) if mixed.box_a is None and mixed.mask is not None else None
        panels = []
        for i in range(images.shape[0]):
            panel = Image.new("RGB", (2 * size + gap, caption + size))
            for left, picture in ((0, images[i]), (size + gap, overlays[i])):
                array = (picture.permute(1, 2, 0).numpy() * 255).astype("uint8")
                tile = np.array(Image.fromarray(array).resize((size, size), resample))
                if edges is not None:
                    tile[edges[i].numpy()] = BOX_COLOUR
                panel.paste(Image.fromarray(tile), (left, caption))
            draw = ImageDraw.Draw(panel)
            if mixed.box_a is not None:
                x1, y1, x2, y2 = (mixed.box_a[i].cpu().float() * scale).round().int().tolist()
                if x2 > x1 and y2 > y1:  # an empty box: this image was not mixed
                    for left in (0, size + gap):
                        draw.rectangle(
                            (left + x1, caption + y1, left + x2 - 1, caption + y2 - 1), outline=BOX_COLOUR, width=2
                        )
            for row, (targets, lam) in enumerate(((mixed.targets_a, mixed.lam_a), (mixed.targets_b, mixed.lam_b))):
                label = int(targets[i])
                text = f"{'ab'[row]}: {class_names[label] if class_names else label}  {float(lam[i]):.2f}"
                draw.text((4, 4 + row * (CAPTION_FONT_SIZE + 2)), text, fill=(255, 255, 255), font=font)
            panels.append(torch.from_numpy(np.array(panel)).permute(2, 0, 1))
        return make_grid(torch.stack(panels), nrow=2, padding=gap)


def _mask_edges(mask: Tensor, size: int) -> Tensor:
    """(B, size, size) bool: a 2-px border inside each image's partner region (share >= 0.5), at display size.
    The image's own frame is not a border (the erosion's padding counts as inside)."""
    region = F.interpolate(mask.detach().float().cpu()[:, None], size=(size, size), mode="nearest") >= 0.5
    inner = -F.max_pool2d(-region.float(), kernel_size=5, stride=1, padding=2) > 0.5  # erosion by 2 px
    return (region & ~inner)[:, 0]


def _tensorboards(trainer: pl.Trainer) -> list[TensorBoardLogger]:
    return [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)] if trainer.is_global_zero else []


class MixingDashboard(pl.Callback):
    """Per epoch, over the mixed batches only: histograms of ``lam_a``, ``lam_b`` and ``lam_a + lam_b``,
    and the mean gap between the assigned weights and the area-based weights of the same boxes
    (``train/lam_gap_to_area``: zero for CutMix, SnapMix's departure from area labelling); after
    testing, the confusion matrix. Steps are global steps, the x-axis of every other chart.
    """

    def __init__(self) -> None:
        self.weights: list[tuple[Tensor, Tensor]] = []
        self.gaps: list[Tensor] = []
        self.confusion: Tensor | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not isinstance(outputs, dict) or outputs.get("partner") is None:  # unmixed (prob < 1): weights 1 and 0
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
                    logger.experiment.add_histogram(f"train/{name}", values, trainer.global_step)
                if self.gaps:
                    gap = float(torch.cat(self.gaps).mean())
                    logger.experiment.add_scalar("train/lam_gap_to_area", gap, trainer.global_step)
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


class LabelNoiseMeter(pl.Callback):
    """Logs ``train/label_mae_snapmix``, ``train/label_mae_cutmix`` and ``train/label_mae_ratio``
    at the end of every ``every_n_epochs``-th training epoch, on a fixed set of images of ``split``
    (``train``: with the training transform's crop and flip; ``val``: the validation images).

    The images, their transform's random crop/flip and the pairs are fixed by ``seed``,
    so the curve follows the model alone. The truth is the dataset's (``data.truth``):
    synthetic part masks, or a real dataset's keypoints (``truth=parts``) or object boxes
    (``truth=box``); ``None`` takes the dataset's first kind. On a dataset without that truth
    it logs one line saying so and does nothing else, so it can sit in the default callbacks.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_pairs: int = 128,
        seed: int = 0,
        beta: float = SNAPMIX_BETA,
        truth: str | None = None,
        split: str = "train",
    ):
        if split not in ("train", "val"):
            raise UserError(f"LabelNoiseMeter: split must be 'train' or 'val', got {split!r}")
        if every_n_epochs < 1:
            raise UserError(f"LabelNoiseMeter: every_n_epochs must be >= 1, got {every_n_epochs}")
        if num_pairs < 2:
            raise UserError(f"LabelNoiseMeter: num_pairs must be >= 2, got {num_pairs}")
        self.every_n_epochs = every_n_epochs
        self.num_pairs = num_pairs
        self.seed = seed
        self.beta = beta
        self.truth = truth
        self.split = split
        self._samples: tuple[Tensor, Tensor, Tensor] | None = None
        self._off = False

    def _training_samples(self, trainer: pl.Trainer) -> tuple[Tensor, Tensor, Tensor] | None:
        if self._samples is None and not self._off:
            dataset = getattr(trainer.datamodule, "datasets", {}).get(self.split)
            source = None if dataset is None else truth_source(dataset)
            kinds = () if source is None else source[0].truth_kinds()
            if not kinds or (self.truth is not None and self.truth not in kinds):
                self._off = True
                name = type(source[0] if source else dataset).__name__
                wanted = f"truth={self.truth}" if self.truth else "truth (part masks, keypoints or boxes)"
                log.info("LabelNoiseMeter: %s has no %s; label noise is not measured in this run", name, wanted)
                return None
            try:
                self._samples = masked_samples(dataset, min(self.num_pairs, len(dataset)), self.seed, self.truth)
            except UserError as err:  # a diagnostic: a flaw in the annotations must not stop the training
                self._off = True
                log.warning("LabelNoiseMeter: %s; label noise is not measured in this run", err)
        return self._samples

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs or not trainer.is_global_zero:
            return
        samples = self._training_samples(trainer)
        if samples is None:
            return
        images, targets, masks = samples
        report = measure(pl_module, images, masks, targets, beta=self.beta, seed=self.seed)
        metrics = {
            "train/label_mae_snapmix": report.snapmix.mae,
            "train/label_mae_cutmix": report.cutmix.mae,
            "train/label_mae_ratio": report.mae_ratio,
        }
        pl_module.log_dict(metrics, on_step=False, on_epoch=True, rank_zero_only=True)
