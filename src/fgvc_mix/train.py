"""Hydra entry point: ``python -m fgvc_mix.train [dataset=cub model=resnet50 mix=snapmix ...]``.

With no arguments it trains and tests the embedded synthetic demo. Everything the run
writes (checkpoints, TensorBoard logs, the resolved config) goes under Hydra's output
directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from fgvc_mix.data import FGVCDataModule
from fgvc_mix.errors import UserError
from fgvc_mix.training.config import (
    CONFIG_PATH,
    build_from_config,
    check_epoch_key,
    check_mandatory,
    one_line_user_errors,
)
from fgvc_mix.training.hparams import declare_hparams, experiment_params
from fgvc_mix.training.module import FGVCModule
from fgvc_mix.training.option_checks import check_run_options
from fgvc_mix.training.preemption import (
    INTERRUPTED_EXIT_CODE,
    Preempted,
    SaveOnSigterm,
    checkpoint_path,
    report_interrupted,
    sigterm_as_preempted,
)
from fgvc_mix.training.resume_checks import check_resume
from fgvc_mix.training.sweep_summary import write_job_result

log = logging.getLogger(__name__)

TEST_CHECKPOINTS = ("last", "best")
PROBE_BYTES = 1 << 20  # a checkpoint-sized write would fail the same way on a full disk


def build(cfg: DictConfig) -> tuple[FGVCModule, FGVCDataModule, pl.Trainer]:
    """Module, datamodule and trainer from a composed config; bad options fail here, before training."""
    if cfg.test_ckpt not in TEST_CHECKPOINTS:
        raise UserError(f"test_ckpt must be one of {TEST_CHECKPOINTS}, got {cfg.test_ckpt!r}")
    check_run_options(cfg)
    check_epoch_key(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule: FGVCDataModule = build_from_config(cfg.dataset, _convert_="all")
    datamodule.setup("fit")
    module = FGVCModule(
        model=cfg.model,
        mix=cfg.mix,
        optim=cfg.optim,
        num_classes=datamodule.hparams.num_classes,  # set by setup when the data gives it (dataset=folder)
        label_smoothing=cfg.label_smoothing,
        seed=cfg.seed,
        class_names=datamodule.class_names,
        nonfinite_loss=cfg.nonfinite_loss,
        channels_last=cfg.channels_last,
    )
    size = datamodule.hparams.image_size
    module.example_input_array = torch.zeros(1, 3, size, size)  # the model summary's FLOPs and sizes
    # An entry set to null (callbacks.progress_bar=null, logger.tensorboard=null) is switched off, as ~key is.
    loggers: list[Logger] = [build_from_config(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    callbacks = [build_from_config(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    callbacks.append(SaveOnSigterm(checkpoint_path(HydraConfig.get().runtime.output_dir)))
    trainer: pl.Trainer = build_from_config(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    params, varied = experiment_params(cfg, module.model.pretrained_backbone)
    for logger in loggers:
        logger.log_hyperparams(params)
        if isinstance(logger, TensorBoardLogger):
            declare_hparams(logger, params, varied)
    return module, datamodule, trainer


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then test the last (default) or best weights; returns the test metrics."""
    module, datamodule, trainer = build(cfg)
    check_resume(cfg.ckpt_path, dict(module.hparams), HydraConfig.get().runtime.output_dir)
    with sigterm_as_preempted(trainer):
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        # The weights in memory after fit are the last epoch's; "best" reloads the best checkpoint.
        test_ckpt = "best" if cfg.test_ckpt == "best" and trainer.checkpoint_callback is not None else None
        results = trainer.test(module, datamodule=datamodule, ckpt_path=test_ckpt)
    return results[0] if results else {}


def check_output_dir(output_dir: str | Path) -> None:
    """Fail before training, not at the first checkpoint hours later, if outputs cannot be written."""
    probe = Path(output_dir, ".write_probe")
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        probe.write_bytes(bytes(PROBE_BYTES))
        probe.unlink()
    except OSError as error:
        raise OSError(
            f"cannot write to the output directory {output_dir} ({error.strerror}); free some space or choose "
            "another one with hydra.run.dir=<dir> (hydra.sweep.dir=<dir> for -m)"
        ) from error


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float | None:
    check_mandatory(cfg)
    output_dir = HydraConfig.get().runtime.output_dir
    check_output_dir(output_dir)
    with one_line_user_errors():
        try:
            metrics = train(cfg)
        except Preempted as stop:
            if rank_zero_only.rank == 0:
                report_interrupted(output_dir, stop)
            raise SystemExit(INTERRUPTED_EXIT_CODE) from None
        except Exception as error:
            if rank_zero_only.rank == 0:
                write_job_result(output_dir, None, error)
            raise
    if rank_zero_only.rank != 0:  # DDP ranks > 0 re-run this script; rank 0 reports
        return metrics.get("test/acc")
    write_job_result(output_dir, metrics)
    # Logged, not printed: the summary also ends the run's <output dir>/train.log.
    log.info("Test metrics (%s weights):", cfg.test_ckpt)
    for name, value in sorted(metrics.items()):
        log.info("  %-18s %.4f", name, value)
    log.info("Outputs (checkpoints, TensorBoard logs, config): %s", output_dir)
    log.info("  tensorboard --logdir %s", output_dir)
    return metrics.get("test/acc")


if __name__ == "__main__":
    main()
