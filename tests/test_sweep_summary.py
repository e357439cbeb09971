"""The end of a sweep: the summary table and the summary's absolute path on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from hydra.utils import get_class
from omegaconf import OmegaConf

from fgvc_mix import sweep
from fgvc_mix.training.config import CONFIG_DIR
from fgvc_mix.training.sweep_summary import SweepSummary


def write_job(sweep_dir, job: int, prob: str, acc: float) -> None:
    job_dir = sweep_dir / str(job)
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text(f"- mix.prob={prob}\n")
    (job_dir / "metrics.json").write_text(json.dumps({"status": "completed", "test/acc": acc}))


def test_the_sweep_ends_by_printing_its_table_and_the_absolute_summary_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # hydra.sweep.dir is relative to where the sweep was started
    write_job(tmp_path / "multirun" / "day", 0, "0.5", 0.625)
    write_job(tmp_path / "multirun" / "day", 1, "1.0", 0.75)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": "multirun/day"}}})
    SweepSummary().on_multirun_end(config)
    out = capsys.readouterr().out
    assert "| job | mix.prob | status | test/acc |" in out
    assert "| 0 | 0.5 | completed | 0.6250 |" in out and "| 1 | 1.0 | completed | 0.7500 |" in out
    assert f"Sweep summary: {tmp_path / 'multirun' / 'day' / 'summary.md'} " in out


def test_the_command_line_rebuilds_a_summary_and_names_its_usage(tmp_path, capsys):
    write_job(tmp_path, 0, "0.5", 0.625)
    write_job(tmp_path, 1, "1.0", 0.75)
    sweep.main([str(tmp_path)])
    assert "| 1 | 1.0 | completed | 0.7500 |" in capsys.readouterr().out
    assert (tmp_path / "summary.csv").is_file() and (tmp_path / "summary.png").is_file()
    with pytest.raises(SystemExit, match=r"usage: python -m fgvc_mix\.sweep <multirun directory>"):
        sweep.main([])


def test_train_config_names_the_sweep_callback_by_an_importable_path():
    callbacks = yaml.safe_load((CONFIG_DIR / "train.yaml").read_text())["hydra"]["callbacks"]
    assert get_class(callbacks["sweep_summary"]["_target_"]) is SweepSummary


FAILING_SWEEP = """
import hydra
from hydra.core.hydra_config import HydraConfig

from fgvc_mix.training.sweep_summary import write_job_result


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg):
    if cfg.x == 2:
        raise ValueError("x=2 is not allowed")  # recorded by Hydra only: this job writes no result
    write_job_result(HydraConfig.get().runtime.output_dir, {"test/acc": cfg.x / 4})


main()
"""


def test_a_sweep_with_a_failed_job_prints_the_finished_jobs_and_names_the_failed_one(tmp_path):
    (tmp_path / "app.py").write_text(FAILING_SWEEP)
    command = [
        sys.executable,
        "app.py",
        "-m",
        "+x=1,2,3",
        "+hydra.callbacks.summary._target_=fgvc_mix.training.sweep_summary.SweepSummary",
        "hydra.sweep.dir=sweep",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1 and "x=2 is not allowed" in result.stderr  # Hydra still reports the failure
    out = result.stdout
    assert "| 0 | 1 | completed | 0.2500 |" in out and "| 2 | 3 | completed | 0.7500 |" in out
    assert "| 1 | 2 | failed |" in out
    assert "1 of 3 jobs failed:\n  job 1 (+x=2): ValueError: x=2 is not allowed\n" in out
    assert f"Sweep summary: {tmp_path / 'sweep' / 'summary.md'} " in out
