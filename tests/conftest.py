"""Shared test helpers: compose the real Hydra configs, as the entry points do, with tiny data."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import fgvc_mix

CONFIG_DIR = Path(fgvc_mix.__file__).parent / "conf"

TINY_SYNTHETIC = [
    "dataset.options.train_size=48",
    "dataset.options.val_size=16",
    "dataset.options.test_size=32",
    "dataset.batch_size=16",
    "dataset.num_workers=0",
]


def compose_config(overrides: list[str], output_dir: Path, config_name: str = "train") -> DictConfig:
    """The composed config with ``${hydra:runtime.output_dir}`` pointing at ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture
def tiny_config(tmp_path):
    """``tiny_config(*overrides)``: the synthetic demo config shrunk to seconds, writing under tmp_path."""

    def make(*overrides: str) -> DictConfig:
        return compose_config([*TINY_SYNTHETIC, *overrides], tmp_path)

    yield make
    GlobalHydra.instance().clear()
