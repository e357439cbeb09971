"""What a run prints and logs: Lightning's messages in Hydra's log, known third-party noise filtered out.

The entry points' configs list :class:`RunLogging` under ``hydra.callbacks``, so every
``python -m fgvc_mix.<entry>`` (and every DDP rank, which re-runs the entry point) gets the
same setup after Hydra has configured logging and before the job runs.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

LIGHTNING_LOGGERS = ("lightning_fabric", "pytorch_lightning")

NOISY_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # Lightning's pytree helper checks isinstance(..., LeafSpec), which torch >= 2.9 deprecates.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    # The TorchScript export (format=torchscript) is what the user asked for; its deprecation is ours to handle.
    (r"`torch\.jit\.trace(_method)?` is deprecated", FutureWarning),
    # The training loader resumes mid-epoch through the datamodule's state (data/resumable.py), unseen by Lightning.
    (r"You're resuming from a checkpoint that ended before the epoch ended", UserWarning),
)
"""(message regex, category) of warnings that tell a user of this toolkit nothing they can act on."""

NOISY_LOG_MESSAGES: tuple[str, ...] = ("💡 Tip: For seamless cloud",)
"""Starts of log messages dropped from the console and the log file (Lightning's LitLogger and litmodels adverts)."""


def filter_known_noise() -> None:
    """Ignore exactly the warnings in :data:`NOISY_WARNINGS`; every other warning still shows."""
    for message, category in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


class KnownNoise(logging.Filter):
    """A handler filter (``hydra/job_logging``) dropping the records listed in :data:`NOISY_LOG_MESSAGES`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(NOISY_LOG_MESSAGES)


def route_lightning_logs() -> None:
    """Send Lightning's INFO lines through Hydra's handlers (console and ``<job>.log``).

    Lightning gives its loggers their own stderr handler, and stops them propagating, when
    it is imported before logging is configured, which is always the case under
    ``@hydra.main``; so Hydra's log file never saw them. With logging off
    (``hydra/job_logging=disabled``) Lightning keeps its own handler.
    """
    if not logging.getLogger().handlers:
        return
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True


class RunLogging(Callback):
    """Hydra callback: :func:`route_lightning_logs` and :func:`filter_known_noise` at the start of each job."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        route_lightning_logs()
        filter_known_noise()
