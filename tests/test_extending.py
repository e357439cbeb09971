"""docs/extending.md holds: a new CAM mixer is its module and one YAML, a new dataset its reader, one
registry line and one YAML, and everything that lists mixers or datasets finds them.

The benchmarks' rows and the tests' parametrisations read ``conf/mix/`` (``fgvc_mix.training.mix_options``),
so a mixer YAML dropped into a copy of the config tree is trained, timed and ranked with no other edit.
"""

from __future__ import annotations

import shutil
import sys

import pytest
import test_new_mixers
import test_training
from helpers import CONFIG_DIR, TINY_SYNTHETIC
from helpers.datasets import write_jpeg
from omegaconf import OmegaConf
from test_benchmarks import load_script
from test_datasets import TinyReader

import fgvc_mix.training.config
from fgvc_mix.data import registry
from fgvc_mix.train import build
from fgvc_mix.training.config import compose_config
from fgvc_mix.training.mix_options import benchmark_mix_options, cnn_mix_options, mix_options

# A CAM-guided mixer as a user writes it, outside the package: SnapMix's rule at its own Beta.
MIXER_MODULE = """
from fgvc_mix.mixing import CamForward, Mixer, snapmix


class PeakSnap(Mixer):
    name = "peaksnap"

    def __init__(self, prob=1.0, beta=5.0, per_sample=False, seed=None, **cam_options):
        super().__init__(prob, per_sample, seed)
        self.cam_forward = CamForward(**cam_options)
        self.beta = beta

    def mix_batch(self, images, targets, cams, generator):
        return snapmix(images, targets, cams, beta=self.beta, per_sample=self.per_sample, generator=generator)
"""
MIXER_YAML = """defaults:
  - cam/default@_here_
  - _self_
_target_: peaksnap_mixer.PeakSnap
prob: 1.0
beta: 2.0
"""


@pytest.fixture
def tree_with_a_new_mixer(tmp_path, monkeypatch):
    """A copy of ``conf/`` with ``mix/peaksnap.yaml``, its module importable, and the config read from the copy."""
    config_dir = tmp_path / "conf"
    shutil.copytree(CONFIG_DIR, config_dir)
    (config_dir / "mix" / "peaksnap.yaml").write_text(MIXER_YAML)
    (tmp_path / "peaksnap_mixer.py").write_text(MIXER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(fgvc_mix.training.config, "CONFIG_DIR", config_dir)
    yield config_dir
    sys.modules.pop("peaksnap_mixer", None)


def parametrised(test, argname: str) -> list:
    """The values ``@pytest.mark.parametrize(argname, ...)`` gives ``test``."""
    (values,) = [mark.args[1] for mark in test.pytestmark if mark.name == "parametrize" and mark.args[0] == argname]
    return list(values)


def test_the_mixer_parametrisations_are_the_config_tree():
    assert parametrised(test_training.test_fast_dev_run_trains_with_each_mixer, "mix") == cnn_mix_options()
    assert [mix for mix in cnn_mix_options() if mix != "none"] == test_new_mixers.MIXING_OPTIONS
    assert tuple(benchmark_mix_options()) == load_script("step_overhead").MIX_CONFIGS


def test_a_new_mixer_yaml_joins_training_benchmarks_and_tests(tree_with_a_new_mixer):
    config_dir = tree_with_a_new_mixer
    assert "peaksnap" in mix_options(config_dir) and "peaksnap" not in mix_options()
    assert "peaksnap" in cnn_mix_options(config_dir)  # the training tests' parametrisation
    assert "peaksnap" in benchmark_mix_options(config_dir)  # step_overhead.py's rows
    assert load_script("paper_regime").mixer_rows(config_dir)["peaksnap"] == ["mix=peaksnap"]  # the leaderboard


def test_a_new_cam_mixer_gets_the_cam_options_from_one_defaults_line_and_trains(tree_with_a_new_mixer, tmp_path):
    cfg = compose_config([*TINY_SYNTHETIC, "mix=peaksnap", "trainer=debug"], tmp_path / "run")
    shared = OmegaConf.load(CONFIG_DIR / "mix" / "cam" / "default.yaml")
    assert {key: cfg.mix[key] for key in shared} == OmegaConf.to_container(shared) and cfg.mix.beta == 2.0
    module, datamodule, trainer = build(cfg)
    assert type(module.mixer).__name__ == "PeakSnap" and module.mixer.needs_cams
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 1


@pytest.fixture
def tree_with_a_new_dataset(tmp_path, monkeypatch):
    """The guide's three files: a reader (``test_datasets.TinyReader``, the example docs/extending.md names, outside
    the package as a user's would be), its registry line, and ``conf/dataset/tiny.yaml`` (``cub.yaml`` edited)."""
    monkeypatch.setitem(registry.DATASETS, "tiny", registry.reader(TinyReader))
    config_dir = tmp_path / "conf"
    shutil.copytree(CONFIG_DIR, config_dir)
    dataset = OmegaConf.load(config_dir / "dataset" / "cub.yaml")
    dataset.merge_with({"name": "tiny", "num_classes": 2, "image_size": 32, "resize_size": 36, "num_workers": 0})
    OmegaConf.save(dataset, config_dir / "dataset" / "tiny.yaml")
    monkeypatch.setattr(fgvc_mix.training.config, "CONFIG_DIR", config_dir)
    root = tmp_path / "data" / "tiny"
    root.mkdir(parents=True)
    rows = [f"{name}{i}.jpg {name}" for name in ("robin", "wren") for i in range(16)]
    for seed, row in enumerate(rows):
        write_jpeg(root / row.split()[0], seed=seed)
    (root / "labels.txt").write_text("\n".join(rows) + "\n")
    return root.parent


def test_a_new_dataset_is_its_reader_one_registry_line_and_one_yaml(tree_with_a_new_dataset, tmp_path):
    cfg = compose_config(["dataset=tiny", f"dataset.root={tree_with_a_new_dataset}", "trainer=debug"], tmp_path / "run")
    module, datamodule, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 1 and datamodule.class_names == ["robin", "wren"]
