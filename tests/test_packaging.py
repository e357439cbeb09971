"""The config tree lives at the top of the checkout (``conf/``) and still ships inside a built wheel."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from fgvc_mix.training.config import CONFIG_DIR

REPO = Path(__file__).resolve().parents[1]


def test_checkout_reads_the_top_level_config_tree():
    assert CONFIG_DIR == REPO / "conf"
    assert not (REPO / "src" / "fgvc_mix" / "conf").exists(), "one source of truth: no second config tree in src/"


@pytest.mark.slow
def test_built_wheel_trains_from_a_fresh_venv_outside_the_checkout(tmp_path):
    """Build the wheel, install it alone in a new venv, and train the demo for one batch from elsewhere.

    The new venv borrows the test environment's dependencies through a .pth line (so nothing is
    downloaded), but fgvc_mix itself, code and configs, comes only from the wheel.
    """
    source, wheels = tmp_path / "source", tmp_path / "wheels"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("src", "conf"):  # a clean tree: no stale build/ from the checkout
        shutil.copytree(REPO / folder, source / folder, ignore=skip)
    for file in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / file, source / file)
    run = dict(check=True, capture_output=True, text=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source], **run
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], **run)
    python = venv / "bin" / "python"
    venv_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], **run
    ).stdout.strip()
    dependencies = [p for p in {sysconfig.get_paths()["purelib"], *site.getsitepackages()} if Path(p).is_dir()]
    Path(venv_site, "borrowed_dependencies.pth").write_text("\n".join(dependencies) + "\n")
    wheel = next(wheels.glob("fgvc_mix-*.whl"))
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], **run)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([python, "-c", "import fgvc_mix.training.config as c; print(c.__file__, c.CONFIG_DIR)"],
                           cwd=elsewhere, env=env, **run).stdout.split()  # fmt: skip
    assert where[0].startswith(venv_site) and where[1] == str(Path(venv_site, "fgvc_mix", "conf"))
    overrides = [
        "trainer=cpu", "+trainer.fast_dev_run=true", "logger=csv", "dataset.num_workers=0",
        "dataset.options.train_size=16", "dataset.options.val_size=16", "dataset.options.test_size=16",
        "dataset.batch_size=8", f"hydra.run.dir={elsewhere / 'run'}",
    ]  # fmt: skip
    result = subprocess.run([python, "-m", "fgvc_mix.train", *overrides], cwd=elsewhere, env=env, **run)
    assert "test/acc" in result.stdout
    job = subprocess.run([python, "-m", "fgvc_mix.train", "experiment=paper/cub_r50_snapmix", "--cfg", "job"],
                         cwd=elsewhere, env=env, **run).stdout  # fmt: skip
    assert "name: resnet50" in job
