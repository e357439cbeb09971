"""The end-to-end throughput benchmark runs (tiny sizes, CPU): it must not rot between GPU loans."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_train_throughput_quick_prints_an_images_per_second_row_for_each_run():
    command = [
        sys.executable,
        "train_throughput.py",
        "--quick",
        *("--steps", "2", "--warmup", "1", "--workers", "1", "--mixers", "none,snapmix"),
        *("--extra", "cutmix_b4 mix=cutmix dataset.batch_size=4"),
    ]
    run = subprocess.run(
        command, cwd=BENCHMARKS, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rates = {match[1]: float(match[2]) for match in re.finditer(r"^(\S+)\s+([\d.]+) img/s$", run.stdout, re.MULTILINE)}
    assert set(rates) == {"loader", "none", "snapmix", "cutmix_b4"}, run.stdout
    assert all(rate > 0 for rate in rates.values())
    assert re.search(r"^snapmix / none = \d+\.\d{3}$", run.stdout, re.MULTILINE), run.stdout
