"""Shared fixtures: compose the real Hydra configs, as the entry points do, with tiny data.

Plain helpers (``TINY_SYNTHETIC``, ``CONFIG_DIR``, ``compose_config``) live in ``tests/helpers``.
"""

from __future__ import annotations

import pytest
from helpers import TINY_SYNTHETIC, compose_config
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig


@pytest.fixture
def tiny_config(tmp_path):
    """``tiny_config(*overrides)``: the synthetic demo config shrunk to seconds, writing under tmp_path."""

    def make(*overrides: str) -> DictConfig:
        return compose_config([*TINY_SYNTHETIC, *overrides], tmp_path)

    yield make
    GlobalHydra.instance().clear()
