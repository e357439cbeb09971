"""Refuse an output directory that cannot be created, before Hydra tries to and fails with a traceback.

Hydra creates the run's directory and opens its log file before the job starts: a file in the
way, or a parent the user may not write to, ended in a Hydra traceback or ``Unable to configure
handler 'file'``. :func:`fgvc_mix.train.check_output_dir` then probes the created directory (a full disk).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def check_can_create(directory: str | Path, option: str) -> None:
    """Exit with one ``Error:`` line unless ``directory`` exists as a writable folder or can be made in one."""
    path = Path(directory).absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return
    problem = "is a file, not a folder" if not existing.is_dir() else "is not writable"
    raise SystemExit(
        f"Error: cannot create the output directory {path}: {existing} {problem}; choose another with {option}=<dir>"
    )


class OutputDirCheck(Callback):
    """Hydra callback (``hydra.callbacks`` in ``conf/train.yaml``): :func:`check_can_create` on the run or sweep dir."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_can_create(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_can_create(config.hydra.sweep.dir, "hydra.sweep.dir")
