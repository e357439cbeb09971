"""Test helpers shared by several test modules (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fgvc_mix.training.config import CONFIG_DIR, compose_config

__all__ = ["CONFIG_DIR", "TINY_SYNTHETIC", "compose_config", "run_module"]

TINY_SYNTHETIC = [
    "dataset.options.train_size=48",
    "dataset.options.val_size=16",
    "dataset.options.test_size=32",
    "dataset.batch_size=16",
    "dataset.num_workers=0",
]
"""Overrides that shrink the synthetic demo to seconds."""


def run_module(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m fgvc_mix.<module> args...`` as a user types it, one thread per process (2 shared cores)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", f"fgvc_mix.{module}", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
