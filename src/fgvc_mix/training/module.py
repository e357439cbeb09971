"""The LightningModule: the configured mixer (``conf/mix/``) inside ``training_step``.

The model, mixer and optimiser are built here from their configs (plain dicts with
``_target_``), and ``save_hyperparameters()`` stores those configs, so a checkpoint
alone rebuilds the whole module: ``FGVCModule.load_from_checkpoint(path)``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from fgvc_mix.errors import UserError
from fgvc_mix.mixing import MixedBatch, Mixer, mixed_cross_entropy
from fgvc_mix.models import FGVCClassifier
from fgvc_mix.models.batchnorm import batchnorm_buffers
from fgvc_mix.training.config import build_from_config

log = logging.getLogger(__name__)
NONFINITE_LOSS_ACTIONS = ("stop", "skip")


def _plain(config: Any) -> Any:
    """Hydra configs become plain containers, so checkpoints hold no OmegaConf objects."""
    return OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config


def random_states() -> dict[str, Any]:
    """The global CPU RNG states (torch, numpy, random) as plain types that ``weights_only`` loading accepts."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys.tolist(), position, has_gauss, cached],
        "python": random.getstate(),
    }


def set_random_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    random.setstate(states["python"])


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Top-1, top-5 and mean per-class accuracy, named ``<prefix>acc`` etc."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "acc_top5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
            "acc_macro": MulticlassAccuracy(num_classes, average="macro"),
        },
        prefix=prefix,
    )


def learning_rate(optimizer_factory: functools.partial) -> float:
    """The ``lr`` of a ``_partial_`` optimiser config: its own key, else the optimiser's default."""
    if "lr" in optimizer_factory.keywords:
        return optimizer_factory.keywords["lr"]
    lr = inspect.signature(optimizer_factory.func).parameters.get("lr")
    if lr is None or not isinstance(lr.default, int | float):  # absent, or torch's `required`
        name = getattr(optimizer_factory.func, "__qualname__", repr(optimizer_factory.func))
        raise UserError(f"optim.optimizer: {name} has no default learning rate; set optim.optimizer.lr=<value>")
    return float(lr.default)


class FGVCModule(pl.LightningModule):
    """Fine-grained classifier trained with a mixer; validation and test never mix."""

    def __init__(
        self,
        model: dict[str, Any],
        mix: dict[str, Any],
        optim: dict[str, Any],
        num_classes: int,
        label_smoothing: float = 0.0,
        seed: int = 0,
        class_names: list[str] | None = None,
        nonfinite_loss: str = "stop",
        *,
        channels_last: bool,
    ) -> None:
        # channels_last has no default here: conf/train.yaml owns it (true), and callers say which they want.
        super().__init__()
        if nonfinite_loss not in NONFINITE_LOSS_ACTIONS:
            raise UserError(f"nonfinite_loss must be one of {NONFINITE_LOSS_ACTIONS}, got {nonfinite_loss!r}")
        model, mix, optim = _plain(model), _plain(mix), _plain(optim)
        # Hydra configs arrive as DictConfig; the plain containers above are what the checkpoint stores.
        self.save_hyperparameters(logger=False)
        self.model: FGVCClassifier = build_from_config(model, num_classes=num_classes)
        self.mixer: Mixer = build_from_config(mix)
        self.mixer.check_model(self.model)  # e.g. TransMix on a CNN: refused here, before the first step
        if channels_last:  # batches follow in training_step / _evaluate / forward
            self.model.to(memory_format=torch.channels_last)
        self.skipped_batches = 0
        self.val_metrics = self._metrics("val")
        self.test_metrics = self._metrics("test")

    def _metrics(self, stage: str) -> nn.ModuleDict:
        """``<stage>/acc`` etc. for the prediction; with several heads also ``<stage>/<head>/acc`` for each."""
        heads = self.model.head_names
        prefixes = {"prediction": f"{stage}/"}
        if len(heads) > 1:
            prefixes.update({head: f"{stage}/{head}/" for head in heads})
        return nn.ModuleDict(
            {key: classification_metrics(self.hparams.num_classes, prefix) for key, prefix in prefixes.items()}
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.model(self.in_model_layout(images))

    def setup(self, stage: str) -> None:
        # Here, not in on_fit_start: a resumed run restores the generator from its checkpoint
        # after setup and before on_fit_start.
        if stage == "fit":
            self.mixer.reseed(self.hparams.seed, self.global_rank)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The mixer's generators and the global RNGs (shuffling, augmentation), so that a resumed
        # run draws what the uninterrupted run would have drawn.
        checkpoint["mixer_generator_state"] = self.mixer.generator.get_state()
        checkpoint["mixer_decision_state"] = self.mixer.decision_generator.get_state()
        checkpoint["rng_states"] = random_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Rank 0 wrote the checkpoint with its own box generator; other ranks draw a fresh, distinct
        # stream. The decision stream is the same on every rank, so every rank restores it: ranks keep
        # mixing in the same steps (SyncBatchNorm's all-reduce in the CAM forward needs them all).
        self.mixer.reseed(self.hparams.seed, self.global_rank, checkpoint.get("global_step", 0))
        if self.global_rank == 0 and "mixer_generator_state" in checkpoint:
            self.mixer.generator.set_state(checkpoint["mixer_generator_state"])
        if "mixer_decision_state" in checkpoint:
            self.mixer.decision_generator.set_state(checkpoint["mixer_decision_state"])
        if self.global_rank == 0 and "rng_states" in checkpoint and self._trainer is not None:
            set_random_states(checkpoint["rng_states"])

    def in_model_layout(self, images: Tensor) -> Tensor:
        """With ``channels_last``, images become NHWC like the model's weights (a no-op when they already are)."""
        return images.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else images

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Any] | None:
        images, targets = batch
        images = self.in_model_layout(images)
        # A skipped batch must not leave its NaNs in the BatchNorm statistics its forward updated.
        saved_statistics = batchnorm_buffers(self.model, clone=True) if self.hparams.nonfinite_loss == "skip" else None
        loss, mixed = self.mixed_loss(images, targets)
        if not torch.isfinite(loss):  # one host sync per step, the price of never training on NaN
            return self._nonfinite(loss, batch_idx, saved_statistics)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=images.shape[0])
        # The label weights and boxes go to callbacks (dashboards) through on_train_batch_end's outputs.
        return {
            "loss": loss,
            "lam_a": mixed.lam_a.detach(),
            "lam_b": mixed.lam_b.detach(),
            "partner": mixed.partner,  # None: the batch was not mixed (prob < 1)
            "box_a": mixed.box_a,
            "box_b": mixed.box_b,
        }

    def mixed_loss(self, images: Tensor, targets: Tensor) -> tuple[Tensor, MixedBatch]:
        """The training loss of one batch, and the mixed batch it was computed on: mix, forward, mixed cross-entropy.

        The whole of a training step but its NaN guard and logging, so tests (the sync check) run the real step.
        ``images`` are in the model's layout (``in_model_layout``).
        """
        mixed = self.mixer(images, targets, self.model)  # the CAM-guided mixers run their CAM forward on the model
        outputs, mixed = self.mixer.forward_mixed(self.model, mixed)  # TransMix re-weights the labels here
        loss = sum(
            self.model.loss_weight(head) * mixed_cross_entropy(logits, mixed, self.hparams.label_smoothing)
            for head, logits in outputs.items()
        )
        return loss, mixed

    def _nonfinite(self, loss: Tensor, batch_idx: int, saved_statistics: list[Tensor] | None) -> None:
        """Stop (default) before a NaN/Inf loss reaches the weights, or skip the batch if configured."""
        where = (
            f"train/loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step} (batch {batch_idx})"
        )
        if saved_statistics is not None:
            torch._foreach_copy_(batchnorm_buffers(self.model), saved_statistics)
            self.skipped_batches += 1
            log.warning("%s: batch skipped (nonfinite_loss=skip), %d so far", where, self.skipped_batches)
            return None
        raise FloatingPointError(
            f"{where}; training stopped before updating the weights, the last checkpoint is the last good one. "
            "Lower optim.optimizer.lr, or set nonfinite_loss=skip to skip such batches."
        )

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str, metrics: nn.ModuleDict) -> Tensor:
        images, targets = batch
        outputs = self.model.forward_heads(self.in_model_layout(images))
        outputs["prediction"] = sum(outputs[head] for head in self.model.head_names)
        loss = torch.nn.functional.cross_entropy(outputs["prediction"], targets)
        self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=images.shape[0])
        for key, collection in metrics.items():
            collection.update(outputs[key], targets)
            self.log_dict(collection, batch_size=images.shape[0])
        return outputs["prediction"].argmax(dim=1)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._evaluate(batch, "val", self.val_metrics)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Returns the predicted classes (for the confusion-matrix dashboard)."""
        return self._evaluate(batch, "test", self.test_metrics)

    def configure_optimizers(self) -> dict[str, Any]:
        """Named parameter groups (``backbone``, ``head``); a pretrained backbone trains at
        ``optim.backbone_lr_scale`` times the new layers' learning rate (the paper: 0.1)."""
        optim = self.hparams.optim
        optimizer_factory = build_from_config(optim["optimizer"])
        base_lr = learning_rate(optimizer_factory)
        scale = optim.get("backbone_lr_scale", 1.0) if self.model.pretrained_backbone else 1.0
        groups = [
            {"params": list(params), "name": name, "lr": base_lr * (scale if name == "backbone" else 1.0)}
            for name, params in self.model.parameter_groups().items()
        ]
        optimizer = optimizer_factory(groups)
        if optim.get("scheduler") is None:
            return {"optimizer": optimizer}
        scheduler = build_from_config(optim["scheduler"])(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
