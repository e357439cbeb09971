"""Shared test helpers: compose the real Hydra configs, as the entry points do, with tiny data."""

from __future__ import annotations

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from fgvc_mix.config import CONFIG_DIR, compose_config

__all__ = ["CONFIG_DIR", "TINY_SYNTHETIC", "compose_config"]

TINY_SYNTHETIC = [
    "dataset.options.train_size=48",
    "dataset.options.val_size=16",
    "dataset.options.test_size=32",
    "dataset.batch_size=16",
    "dataset.num_workers=0",
]


@pytest.fixture
def tiny_config(tmp_path):
    """``tiny_config(*overrides)``: the synthetic demo config shrunk to seconds, writing under tmp_path."""

    def make(*overrides: str) -> DictConfig:
        return compose_config([*TINY_SYNTHETIC, *overrides], tmp_path)

    yield make
    GlobalHydra.instance().clear()
