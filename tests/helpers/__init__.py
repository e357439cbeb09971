"""Test helpers shared by several test modules (fixtures live in ``conftest.py``)."""

from __future__ import annotations

from fgvc_mix.config import CONFIG_DIR, compose_config

__all__ = ["CONFIG_DIR", "TINY_SYNTHETIC", "compose_config"]

TINY_SYNTHETIC = [
    "dataset.options.train_size=48",
    "dataset.options.val_size=16",
    "dataset.options.test_size=32",
    "dataset.batch_size=16",
    "dataset.num_workers=0",
]
"""Overrides that shrink the synthetic demo to seconds."""
