"""The step-overhead benchmark runs end to end (tiny sizes): it must not rot between GPU loans."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
def test_step_overhead_prints_a_ratio_for_every_row(layout):
    tiny = ["--size", "32", "--batch", "2", "--classes", "4", "--repeats", "1", "--warmup", "0"]
    command = [sys.executable, "step_overhead.py", "--layout", layout, *tiny]
    run = subprocess.run(
        command, cwd=BENCHMARKS, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"}
    )
    assert run.returncode == 0, run.stderr
    rows = {line.split()[0]: float(line.split()[1]) for line in run.stdout.splitlines()[2:]}
    expected = {"none", "snapmix", "snapmix_eval_bn", "snapmix_half_res", "snapmix_bf16", "cutmix", "mixup", "authors"}
    assert expected <= set(rows) and rows["none"] == 1.0
    assert ("none_nchw" in rows) == (layout == "channels_last")
    assert all(ratio > 0 for ratio in rows.values())
