"""Pre-emption (SIGTERM from a scheduler, a time limit, ``kill``): save the training, say so, exit non-zero.

On SIGTERM, Lightning finishes the current batch and raises ``SIGTERMException``, a ``SystemExit``
with status 0: a pre-empted run looked like a success to a scheduler, a shell script or a sweep,
and lost its partial epoch. Lightning's SLURM requeue (``SIGUSR1``, ``auto_requeue``) is left as it is.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from fgvc_mix.training.sweep_summary import RESULT_FILE

log = logging.getLogger(__name__)

INTERRUPTED_EXIT_CODE = 143
"""128 + SIGTERM: what a shell reports for a process that SIGTERM ended."""
NOT_REPEATED = ("ckpt_path=", "hydra.run.dir=")
"""Overrides the resume command sets itself."""


class Preempted(Exception):
    """The run stopped on SIGTERM at ``epoch``/``global_step``; the entry point reports it and exits non-zero."""

    def __init__(self, epoch: int, global_step: int) -> None:
        super().__init__(f"interrupted by SIGTERM at epoch {epoch}, step {global_step}")
        self.epoch, self.global_step = epoch, global_step


@contextmanager
def sigterm_as_preempted(trainer: pl.Trainer) -> Iterator[None]:
    """Lightning's ``SIGTERMException`` (exit status 0) becomes :class:`Preempted`, which nobody takes for success."""
    try:
        yield
    except SIGTERMException:
        raise Preempted(trainer.current_epoch, trainer.global_step) from None


def checkpoint_path(output_dir: str | Path) -> Path:
    """``<output dir>/checkpoints/last.ckpt``: where ``ckpt_path=last`` looks, and what the resume command names."""
    return Path(output_dir, "checkpoints", "last.ckpt")


class SaveOnSigterm(pl.Callback):
    """On SIGTERM during fit, save the whole training state (mid-epoch included) where resuming looks.

    The write is Lightning's atomic one: a second kill while it writes leaves the previous ``last.ckpt``.
    A mid-epoch checkpoint resumes exactly: the datamodule records the batches done (data/resumable.py).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and trainer.state.fn == TrainerFn.FITTING:
            trainer.save_checkpoint(self.path)


def resume_command(output_dir: str | Path) -> str:
    """The command that continues this run in its own output directory: its overrides, its last checkpoint."""
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith(NOT_REPEATED)]
    arguments = [*overrides, f"ckpt_path={checkpoint_path(output_dir)}", f"hydra.run.dir={output_dir}"]
    return shlex.join(["python", "-m", "fgvc_mix.train", *arguments])


def report_interrupted(output_dir: str | Path, stop: Preempted) -> None:
    """Mark the run interrupted in ``metrics.json`` (the sweep summary reads it) and log how to resume it."""
    checkpoint = checkpoint_path(output_dir)
    result = {"status": "interrupted", "epoch": stop.epoch, "global_step": stop.global_step}
    if not checkpoint.is_file():
        Path(output_dir, RESULT_FILE).write_text(json.dumps(result, indent=2))
        log.error("The run was %s, before any checkpoint was saved; start it again", stop)
        return
    command = resume_command(output_dir)
    result.update(checkpoint=str(checkpoint), resume=command)
    Path(output_dir, RESULT_FILE).write_text(json.dumps(result, indent=2))
    log.error("The run was %s; its training state is in %s. Resume it with:\n  %s", stop, checkpoint, command)
