"""Evaluate a checkpoint on its test split: ``python -m fgvc_mix.evaluate ckpt_path=...``.

The checkpoint alone is enough: it holds the model, mixer and optimiser configs
(the module's hyper-parameters) and the datamodule's settings. ``dataset.root``,
``dataset.batch_size`` and ``dataset.num_workers`` may be overridden, e.g. when the
data moved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from fgvc_mix.data import FGVCDataModule
from fgvc_mix.module import FGVCModule


def load_checkpoint(ckpt_path: str | Path, dataset_overrides: dict[str, Any] | None = None):
    """The module and the datamodule stored in ``ckpt_path``; checks they agree on the classes."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={path} does not exist; pass the path of a .ckpt written by fgvc_mix.train")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if "datamodule_hyper_parameters" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise ValueError(f"{path} was not written by fgvc_mix.train: it lacks the module or dataset settings")
    settings = dict(checkpoint["datamodule_hyper_parameters"])
    settings.update({k: v for k, v in (dataset_overrides or {}).items() if v is not None})
    datamodule = FGVCDataModule(**settings)
    module = FGVCModule.load_from_checkpoint(path, map_location="cpu")
    if module.hparams.num_classes != datamodule.hparams.num_classes:
        raise ValueError(
            f"{path} holds a {module.hparams.num_classes}-class model but its dataset settings say "
            f"{datamodule.hparams.num_classes} classes; evaluate it on the dataset it was trained on"
        )
    return module, datamodule


def evaluate(ckpt_path: str | Path, dataset_overrides: dict[str, Any] | None = None, accelerator: str = "auto"):
    """Test metrics (``test/acc``, ``test/acc_top5``, ``test/acc_macro``, ``test/loss``) of a checkpoint."""
    module, datamodule = load_checkpoint(ckpt_path, dataset_overrides)
    trainer = pl.Trainer(accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False)
    return trainer.test(module, datamodule=datamodule)[0]


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    metrics = evaluate(cfg.ckpt_path, dict(cfg.dataset), cfg.accelerator)
    for name, value in sorted(metrics.items()):
        print(f"  {name:<18} {value:.4f}")
    return metrics["test/acc"]


if __name__ == "__main__":
    main()
