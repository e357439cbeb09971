"""CAM quality on the synthetic data: how much of each CAM's mass falls on the true class-defining parts.

SnapMix's labels are only as good as its CAMs: a label weight is the CAM mass inside a
box, so it tracks what the mixed image shows when the CAM sits on the parts that decide
the class (Huang, Wang & Tao, AAAI 2021). The synthetic birds come with part masks
(``SyntheticFGVC.sample_with_mask``), so this can be measured directly. For image i,
with its CAM normalised to sum 1 over the image (``class_activation_maps``),

    part_share[i] = sum over the part pixels of cam[i]

and ``area_share[i]`` is the fraction of the image the parts cover: a CAM that knows
nothing (uniform) scores part_share = area_share, one entirely on the parts scores 1.

Two maps are scored, both in eval mode (BatchNorm running statistics) and exact (no
``mix.cam_resolution`` / ``mix.cam_dtype``):

* ``target``: the target-class CAM through the model's current head, exactly what SnapMix
  mixes with. Before fine-tuning the head is freshly initialised, so this is the CAM
  SnapMix uses at the first step, not a property of the backbone alone.
* ``agnostic``: the class-agnostic activation map, the channel mean of the ReLU'd last
  feature map (``class_activation_maps`` with equal weights on every channel): where
  the backbone's features fire, whatever the head.

``CamPartShareMeter`` logs both (and the area share) before fine-tuning and after every
epoch, to the run's loggers (TensorBoard: ``cam/part_share`` etc., at the trainer's global
step, the x axis of every other chart) and to a JSON file (one entry per epoch done).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.nn import functional as F

from fgvc_mix.evaluation.label_noise import masked_samples, part_mask_source
from fgvc_mix.mixing import class_activation_maps
from fgvc_mix.models.batchnorm import eval_mode
from fgvc_mix.training.module import FGVCModule


def part_share(cams: Tensor, masks: Tensor) -> Tensor:
    """(B,) share of each normalised map's mass on its mask; ``cams`` (B, H, W) sum to 1, ``masks`` (B, H, W) bool."""
    return (cams.float() * masks.float()).sum(dim=(1, 2))


@dataclass(frozen=True)
class PartShare:
    """Means over the scored images: CAM mass on the parts, for both maps, and the parts' area share."""

    target: float
    agnostic: float
    area: float

    @property
    def target_ratio(self) -> float:
        """How many times the area share the target-class CAM puts on the parts (1 = no better than uniform)."""
        return self.target / self.area


@torch.no_grad()
def measure_part_share(
    module: FGVCModule, images: Tensor, masks: Tensor, targets: Tensor, chunk_size: int = 128
) -> PartShare:
    """Part shares of ``module``'s target-class and class-agnostic maps on ``images``.

    One eval-mode forward per chunk gives both maps: the target-class CAM is the one
    ``CamForward(cam_bn="eval")`` computes (the exact forward, eval-mode BatchNorm unfolded here).
    """
    size = tuple(images.shape[-2:])
    head = module.model.head
    target_cams, agnostic_maps = [], []
    with eval_mode(module), torch.inference_mode():
        for x, y in zip(images.split(chunk_size), targets.split(chunk_size), strict=True):
            x, y = module.in_model_layout(x.to(module.device)), y.to(module.device)
            features = module.model.forward_features(x)
            target_cams.append(class_activation_maps(features, head.weight, head.bias, y, size).cpu())
            equal = torch.ones(1, features.shape[1], device=features.device)
            agnostic_maps.append(class_activation_maps(features, equal, None, torch.zeros_like(y), size).cpu())
    return PartShare(
        target=float(part_share(torch.cat(target_cams), masks).mean()),
        agnostic=float(part_share(torch.cat(agnostic_maps), masks).mean()),
        area=float(masks.float().mean()),
    )


def oracle_part_share(masks: Tensor, map_size: tuple[int, int]) -> float:
    """Mean part share of a perfect part detector seen at ``map_size``: the ceiling of a CAM of that resolution.

    The detector's map is each mask's part fraction per cell (area pooling to ``map_size``),
    read out as a CAM is (``class_activation_maps``: bilinear upsampling, minus its minimum,
    normalised to sum 1). A coarse map blurs even perfect knowledge over the parts' neighbours,
    so a measured part share is judged against this, not against 1.
    """
    cells = F.adaptive_avg_pool2d(masks[:, None].float(), map_size)
    cams = class_activation_maps(
        cells, torch.ones(1, 1), None, torch.zeros(len(masks), dtype=torch.long), masks.shape[-2:]
    )
    return float(part_share(cams, masks).mean())


class CamPartShareMeter(pl.Callback):
    """Logs ``cam/part_share``, ``cam/part_share_agnostic``, ``cam/part_area_share`` (and the ratios)
    before fine-tuning and after every training epoch, on fixed images of the synthetic ``split``.

    The logged step is the trainer's global step, like every other chart (0 = before the first
    step); ``json_path`` gets the whole history per epoch done (0 = before fine-tuning) as
    ``[{"epoch": e, "target": ..., "agnostic": ..., "area": ...}]``.
    On datasets without part masks (every real dataset) it does nothing.
    """

    def __init__(self, num_images: int = 128, seed: int = 0, split: str = "test", json_path: str | None = None):
        if num_images < 1:
            raise ValueError(f"CamPartShareMeter: num_images must be >= 1, got {num_images}")
        self.num_images = num_images
        self.seed = seed
        self.split = split
        self.json_path = Path(json_path) if json_path else None
        self.history: list[dict[str, float]] = []
        self._samples: tuple[Tensor, Tensor, Tensor] | None = None

    def _measure(self, trainer: pl.Trainer, module: FGVCModule, epochs_done: int) -> None:
        if not trainer.is_global_zero:
            return
        if self._samples is None:
            dataset = getattr(trainer.datamodule, "datasets", {}).get(self.split)
            if dataset is None or part_mask_source(dataset) is None:
                return
            self._samples = masked_samples(dataset, min(self.num_images, len(dataset)), self.seed)
        images, targets, masks = self._samples
        share = measure_part_share(module, images, masks, targets)
        self.history.append({"epoch": epochs_done, **asdict(share)})
        metrics = {
            "cam/part_share": share.target,
            "cam/part_share_agnostic": share.agnostic,
            "cam/part_area_share": share.area,
            "cam/part_share_ratio": share.target_ratio,
        }
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        if self.json_path is not None:
            self.json_path.parent.mkdir(parents=True, exist_ok=True)
            self.json_path.write_text(json.dumps(self.history))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._measure(trainer, pl_module, trainer.current_epoch)  # 0, or the epochs a resumed run has done

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._measure(trainer, pl_module, trainer.current_epoch + 1)
