"""Paper-regime benchmark: CAM part share, its callback, the statistics, and the script end to end (tiny preset)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fgvc_mix.evaluation.cam_quality import part_share

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("paper_regime", BENCHMARKS / "paper_regime.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_part_share_is_one_on_the_part_and_the_area_share_when_uniform():
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, 1:3, 1:2] = True  # 2 of 16 pixels
    on_part = masks.float() / masks.sum(dim=(1, 2), keepdim=True)
    uniform = torch.full((2, 4, 4), 1 / 16)
    off_part = (~masks).float() / (~masks).sum(dim=(1, 2), keepdim=True)
    assert part_share(on_part, masks).tolist() == [1.0, 1.0]
    assert part_share(uniform, masks).tolist() == pytest.approx([2 / 16, 2 / 16])
    assert part_share(off_part, masks).tolist() == [0.0, 0.0]


def test_t_interval_and_paper_milestones():
    benchmark = load_benchmark()
    mean, half = benchmark.t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) * s / sqrt(n)
    assert benchmark.Preset(trainer="cpu", epochs=200, label_pairs=1, cam_images=1).milestones() == [80, 150, 180]


def run_script(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    """``python benchmarks/<script> *args``; its stdout (the test fails with its stderr when it does)."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", **(env or {})}
    run = subprocess.run([sys.executable, script, *args], cwd=BENCHMARKS, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def run_tiny_benchmark(tmp_path: Path, *args: str) -> tuple[dict, str]:
    """``paper_regime.py --preset tiny`` in a subprocess, caching its weights under tmp_path: (JSON, stdout)."""
    out = tmp_path / "results.json"
    args = ("--preset", "tiny", *args, "--json", str(out), "--output-dir", str(tmp_path / "runs"))
    stdout = run_script("paper_regime.py", *args, env={"FGVC_MIX_HOME": str(tmp_path / "home")})
    return json.loads(out.read_text()), stdout


# Mixers whose mixes have a geometry to score their own labels on (none and Mixup's blend have none).
GEOMETRIC = ("cutmix", "snapmix", "resizemix", "resizemix_cam", "fmix", "fmix_cam", "saliencymix", "attentive_cutmix")


# The tiny run's rows: both references of the table (none, cutmix), a row with nothing to score (none), and ResizeMix
# with area and with CAM labels. That every conf/mix option trains is tests/test_training.py's
# test_fast_dev_run_trains_with_each_mixer; that --mixers defaults to every row is tests/test_benchmarks.py's.
TINY_MIXERS = ["none", "cutmix", "resizemix", "resizemix_cam"]


@pytest.mark.slow
def test_paper_regime_tiny_preset_runs_its_mixers_and_builds_the_leaderboard(tmp_path):
    mixers = TINY_MIXERS
    results, stdout = run_tiny_benchmark(tmp_path, "--seeds", "1", "--seed-start", "1", "--mixers", *mixers)
    assert list(results["protocol"]["mixers"]) == mixers and results["protocol"]["seeds"] == [1]
    for mixer in mixers:
        row = results[mixer]
        for key in ("test_acc", "label_mae_snapmix_rule", "label_mae_cutmix_rule", "cam_part_share"):
            assert len(row[key]) == 1 and all(math.isfinite(v) for v in row[key]), (mixer, key)
        assert [len(epochs) for epochs in row["cam_part_share_epochs"]] == [1]  # one epoch
        own = [row["label_mae"][0], row["label_correlation"][0], row["label_pairs"][0]]
        assert (own == [None] * 3) == (mixer not in GEOMETRIC), (mixer, own)
        assert mixer not in GEOMETRIC or (0.0 <= own[0] <= 1.0 and own[2] > 0), (mixer, own)
    # ResizeMix's CAM rule gives the partner its whole CAM mass, 1, which is the truth: less error than area labels.
    assert results["resizemix_cam"]["label_mae"][0] < results["resizemix"]["label_mae"][0]
    # Same seed, same pretrained backbone and fresh head: every mixer starts from the same CAMs.
    assert len({tuple(results[m]["cam_part_share"]) for m in mixers}) == 1
    assert "| resizemix_cam |" in stdout and "Δ acc vs cutmix" in stdout
    # The default backbone is the ImageNet EfficientNet-Lite0: no pretraining, a 4x4 map at 64 px (output stride 16).
    assert results["protocol"]["backbone"] == "lite0" and results["protocol"]["pretraining"] is None
    assert results["none"]["map_size"] == [[4, 4]]
    oracle, area = results["none"]["cam_part_share_oracle"][0], results["none"]["part_area_share"][0]
    assert area < oracle < 1.0 and "ceiling of a perfect part detector at the 4x4 map" in stdout

    # The leaderboard: this JSON and a step-cost JSON as one markdown table and one PNG.
    step_cost = tmp_path / "step_cost.json"
    tiny = ["--size", "32", "--batch", "2", "--classes", "4", "--repeats", "1", "--warmup", "0"]
    run_script("step_overhead.py", *tiny, "--layout", "nchw", "--mixers", "cutmix", "--json", str(step_cost))
    markdown, png = tmp_path / "docs" / "leaderboard.md", tmp_path / "docs" / "leaderboard.png"
    args = [str(tmp_path / "results.json"), "--step-cost", str(step_cost), "--markdown", str(markdown)]
    run_script("leaderboard.py", *args, "--png", str(png))
    rows = {line.split("|")[1].strip(): line for line in markdown.read_text().splitlines() if line.startswith("| ")}
    assert set(rows) == {"mixer", *mixers}
    costs = json.loads(step_cost.read_text())["step_cost"]
    assert list(costs) == ["none", "cutmix"]  # --mixers: only those rows (no none_nchw row in NCHW)
    assert rows["cutmix"].rstrip(" |").endswith(f"{costs['cutmix']:.2f}") and rows["resizemix"].endswith("| — |")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_standin_backbone_still_pretrains_and_fine_tunes_its_resnet(tmp_path):
    results, _ = run_tiny_benchmark(tmp_path, "--backbone", "standin", "--seeds", "1", "--mixers", "none", "snapmix")
    assert results["protocol"]["backbone"] == "standin" and results["protocol"]["pretraining"] is not None
    assert results["snapmix"]["map_size"] == [[2, 2]]  # the width-8 ResNet-18 at 64 px, stride 32
    assert all(math.isfinite(results[m]["test_acc"][0]) for m in ("none", "snapmix"))


@pytest.mark.slow
def test_full_preset_smoke_runs_its_448_px_configs_on_a_cpu(tmp_path):
    out = tmp_path / "smoke.json"
    args = ["--preset", "full", "--smoke", "--seeds", "1", "--mixers", "snapmix", "--json", str(out)]  # the CAM path
    run_script("paper_regime.py", *args, "--output-dir", str(tmp_path / "runs"))
    results = json.loads(out.read_text())
    assert results["protocol"]["preset"] == "full" and results["protocol"]["smoke"]
    assert results["snapmix"]["map_size"] == [[14, 14]]  # the paper's map: 448 px at stride 32


def test_quick_and_full_presets_compose_the_protocols_networks(tmp_path):
    from fgvc_mix.training.config import compose_config

    benchmark = load_benchmark()
    for name, size, stride in (("quick", 128, 16), ("full", 448, 32)):
        preset = benchmark.PRESETS[name]
        cfg = compose_config([*benchmark.finetune_overrides(preset, None, 0), "mix=snapmix"], tmp_path / name)
        assert cfg.model.name == "efficientnet_lite0" and cfg.model.pretrained and cfg.dataset.image_size == size
        assert cfg.model.backbone_options.get("output_stride", 32) == stride
        assert list(cfg.optim.scheduler.milestones) == preset.milestones()
    standin = benchmark.finetune_overrides(benchmark.PRESETS["quick"], Path("w.pt"), 0)
    cfg = compose_config(standin, tmp_path / "standin")
    assert cfg.model.name == "resnet18" and cfg.model.backbone_options == {"width": 16}
    assert cfg.model.weights_path == "w.pt"


@pytest.mark.slow
def test_cam_resolution_check_scores_exact_and_half_resolution_cams_on_the_same_pairs(tmp_path):
    results, stdout = run_tiny_benchmark(tmp_path, "--cam-resolution-check")
    check = results["cam_resolution"]
    assert check["image_size"] == 64 and check["half_resolution"] == 32
    assert math.isfinite(check["label_mae_exact"]) and math.isfinite(check["label_mae_half_resolution"])
    assert "snapmix half_resolution" in stdout
