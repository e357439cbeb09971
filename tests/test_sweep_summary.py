"""The end of a sweep: the summary table and the summary's absolute path on stdout."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from fgvc_mix.sweep import SweepSummary


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
