"""Shared fixtures: compose the real Hydra configs, as the entry points do, with tiny data.

Plain helpers (``TINY_SYNTHETIC``, ``CONFIG_DIR``, ``compose_config``) live in ``tests/helpers``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import TINY_SYNTHETIC, compose_config
from helpers.datasets import write_cub_style
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig


@pytest.fixture
def tiny_config(tmp_path):
    """``tiny_config(*overrides)``: the synthetic demo config shrunk to seconds, writing under tmp_path."""

    def make(*overrides: str) -> DictConfig:
        return compose_config([*TINY_SYNTHETIC, *overrides], tmp_path)

    yield make
    GlobalHydra.instance().clear()


@pytest.fixture
def cub_root(tmp_path: Path) -> Path:
    """A 9-image, 3-class CUB-200-2011 tree (6 train, 3 test) under tmp_path."""
    classes = [("1", "001.Black_footed_Albatross"), ("2", "002.Laysan_Albatross"), ("3", "003.Sooty_Albatross")]
    images = []
    for n in range(1, 10):
        class_id = str((n - 1) % 3 + 1)
        folder = classes[int(class_id) - 1][1]
        images.append((str(n), f"{folder}/img_{n:04d}.jpg", class_id, int(n % 3 != 0)))
    write_cub_style(tmp_path / "CUB_200_2011", images, classes)
    return tmp_path
