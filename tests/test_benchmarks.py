"""The step-overhead benchmark runs end to end (tiny sizes): it must not rot between GPU loans.
The leaderboard's table from given results."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from fgvc_mix.training.mix_options import benchmark_mix_options

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


TINY = ["--size", "32", "--batch", "2", "--classes", "4", "--repeats", "1", "--warmup", "0"]


def step_overhead(*args: str) -> dict[str, float]:
    """``step_overhead.py`` at tiny sizes: its printed rows, ``{row: step / plain step}``."""
    command = [sys.executable, "step_overhead.py", *TINY, *args]
    run = subprocess.run(
        command, cwd=BENCHMARKS, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"}
    )
    assert run.returncode == 0, run.stderr
    return {line.split()[0]: float(line.split()[1]) for line in run.stdout.splitlines()[2:]}


# The script's own rows (the SnapMix variants, the authors' snapmix()) and two conf/mix rows, one with CAMs: every
# conf/mix row is the same mix_config path, its option trains in tests/test_training.py, and the default --mixers is
# every row (test_the_benchmark_rows_are_the_mix_options_of_the_config_tree).
SCRIPT_ROWS = ["cutmix", "snapmix", "snapmix_eval_bn", "snapmix_half_res", "snapmix_bf16", "authors"]


def test_step_overhead_prints_and_saves_a_ratio_for_each_row_it_is_given(tmp_path):
    rows = step_overhead("--mixers", *SCRIPT_ROWS, "--json", str(tmp_path / "cost.json"))
    assert set(rows) == {"none", *SCRIPT_ROWS, "none_nchw"} and rows["none"] == 1.0
    assert all(ratio > 0 for ratio in rows.values())
    saved = json.loads((tmp_path / "cost.json").read_text())["step_cost"]
    assert {row: round(ratio, 3) for row, ratio in saved.items()} == rows


def load_script(name: str):
    """``benchmarks/<name>.py`` as a module (the scripts import their neighbours: timing, paper_regime)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def test_the_benchmark_rows_are_the_mix_options_of_the_config_tree():
    """Every benchmarked conf/mix file is a step-cost row and a leaderboard row, with Mixup also at prob 1."""
    options = benchmark_mix_options()
    assert {"none", "cutmix", "snapmix", "fmix_cam"} <= set(options) and "transmix" not in options
    overhead = load_script("step_overhead")
    assert tuple(options) == overhead.MIX_CONFIGS
    assert overhead.arguments().parse_args([]).mixers == [*options, *overhead.SNAPMIX_VARIANTS, "authors"]
    paper_regime = load_script("paper_regime")
    rows = paper_regime.MIXERS
    assert paper_regime.arguments().parse_args(["--json", "out.json"]).mixers == list(rows)  # the default: all
    assert list(rows)[:5] == ["none", "mixup", "mixup_p1", "cutmix", "snapmix"]  # the paper's comparison first
    assert set(rows) == {*options, "mixup_p1"} and rows["mixup_p1"] == ["mix=mixup", "mix.prob=1.0"]
    assert all(rows[option] == [f"mix={option}"] for option in options)


def test_leaderboard_ranks_by_label_mae_pairs_accuracy_by_seed_and_maps_step_costs_by_mix_config():
    leaderboard = load_script("leaderboard")
    overrides = {"none": ["mix=none"], "mixup_p1": ["mix=mixup", "mix.prob=1.0"], "cutmix": ["mix=cutmix"]}
    overrides["fmix"] = ["mix=fmix"]
    protocol = {"preset": "quick", "seeds": [0, 1], "epochs": 16, "label_pairs": 512, "mixers": overrides}

    def row(acc: list[float], mae: list[float] | None) -> dict:
        return {
            "test_acc": acc,
            "label_mae": mae or [None, None],
            "label_correlation": [0.5, 0.7] if mae else [None] * 2,
        }

    results = {
        "protocol": protocol,
        "none": row([0.5, 0.7], None),
        "mixup_p1": row([0.6, 0.6], None),
        "cutmix": row([0.6, 0.9], [0.30, 0.40]),
        "fmix": row([0.5, 0.6], [0.10, 0.20]),
    }
    text = leaderboard.table(results, {"none": 1.0, "mixup": 1.01, "cutmix": 1.02})
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in text.splitlines()[2:] if line.startswith("|")]
    assert [r[0] for r in rows] == ["fmix", "cutmix", "none", "mixup_p1"]  # by label MAE; unscored last
    fmix, cutmix, none, mixup = rows
    assert cutmix[2].startswith("0.150 ± ") and fmix[2].startswith("-0.050 ± ")  # paired: (0.1 + 0.2) / 2, -0.05
    assert fmix[3].startswith("0.150 ± ") and fmix[4].startswith("0.60 ± ")
    assert [none[2], none[3], mixup[3], mixup[4]] == ["—", "—", "—", "—"]
    assert [fmix[5], cutmix[5], mixup[5]] == ["—", "1.02", "1.01"]  # mixup_p1 runs mix=mixup: its row
