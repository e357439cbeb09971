"""Hydra entry point: ``python -m fgvc_mix.train [dataset=cub model=resnet50 mix=snapmix ...]``.

With no arguments it trains and tests the embedded synthetic demo. Everything the run
writes (checkpoints, TensorBoard logs, the resolved config) goes under Hydra's output
directory.
"""

from __future__ import annotations

from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, TensorBoardLogger

from fgvc_mix.config import build_from_config
from fgvc_mix.data import FGVCDataModule
from fgvc_mix.module import FGVCModule

TEST_CHECKPOINTS = ("last", "best")
SUMMARY_METRICS = ("val/acc", "test/acc", "test/acc_top5", "test/acc_macro")


def build(cfg: DictConfig) -> tuple[FGVCModule, FGVCDataModule, pl.Trainer]:
    """Module, datamodule and trainer from a composed config; bad options fail here, before training."""
    if cfg.test_ckpt not in TEST_CHECKPOINTS:
        raise ValueError(f"test_ckpt must be one of {TEST_CHECKPOINTS}, got {cfg.test_ckpt!r}")
    pl.seed_everything(cfg.seed, workers=True)
    datamodule: FGVCDataModule = build_from_config(cfg.dataset, _convert_="all")
    datamodule.setup("fit")
    module = FGVCModule(
        model=cfg.model,
        mix=cfg.mix,
        optim=cfg.optim,
        num_classes=cfg.dataset.num_classes,
        label_smoothing=cfg.label_smoothing,
        seed=cfg.seed,
        class_names=datamodule.class_names,
    )
    loggers: list[Logger] = [build_from_config(c) for c in (cfg.get("logger") or {}).values()]
    callbacks = [build_from_config(c) for c in (cfg.get("callbacks") or {}).values()]
    trainer: pl.Trainer = build_from_config(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    params = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            # Declaring the summary metrics makes TensorBoard's HParams tab compare runs on them.
            logger.log_hyperparams(params, {m: 0.0 for m in SUMMARY_METRICS})
        else:
            logger.log_hyperparams(params)
    return module, datamodule, trainer


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then test the last (default) or best weights; returns the test metrics."""
    module, datamodule, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    # The weights in memory after fit are the last epoch's; "best" reloads the best checkpoint.
    test_ckpt = "best" if cfg.test_ckpt == "best" and trainer.checkpoint_callback is not None else None
    results = trainer.test(module, datamodule=datamodule, ckpt_path=test_ckpt)
    return results[0] if results else {}


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    output_dir = HydraConfig.get().runtime.output_dir
    print(f"\nTest metrics ({cfg.test_ckpt} weights):")
    for name, value in sorted(metrics.items()):
        print(f"  {name:<18} {value:.4f}")
    print(f"Outputs (checkpoints, TensorBoard logs, config): {output_dir}")
    print(f"  tensorboard --logdir {output_dir}")
    return metrics.get("test/acc")


if __name__ == "__main__":
    main()
