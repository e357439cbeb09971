"""Every conf/experiment/paper recipe composes with the authors' data pipeline, model, mixer and schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import CONFIG_DIR, compose_config

from fgvc_mix.evaluation.dashboards import LabelNoiseMeter
from fgvc_mix.training.config import build_from_config

PAPER_DIR = CONFIG_DIR / "experiment" / "paper"
RECIPES = sorted(p.stem for p in PAPER_DIR.glob("*.yaml") if not p.stem.startswith("_"))
MODELS = {"r18": "resnet18", "r34": "resnet34", "r50": "resnet50", "r101": "resnet101"}
MODELS |= {"d121": "densenet121", "iv3": "inception_v3"}
RECIPES_DOC = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"
# Top-1 (%) as the authors' README (github.com/Shaoli-Huang/SnapMix, "Results") reports it: the one reference
# that each recipe's comment and docs/recipes.md's paper table are checked against.
AUTHORS_TABLE = {  # variant: (CUB, Cars, Aircraft)
    "r18_baseline": (82.35, 91.15, 87.80), "r18_snapmix": (84.29, 93.12, 90.17),
    "r34_baseline": (84.98, 92.02, 89.92), "r34_snapmix": (87.06, 93.95, 92.36),
    "r50_baseline": (85.49, 93.04, 91.07), "r50_snapmix": (87.75, 94.30, 92.08),
    "r101_baseline": (85.62, 93.09, 91.59), "r101_snapmix": (88.45, 94.44, 93.74),
    "r50_baseline_plus": (87.13, 93.80, 91.68), "r50_baseline_plus_snapmix": (88.70, 95.00, 93.24),
    "r101_baseline_plus": (87.81, 93.94, 91.85), "r101_baseline_plus_snapmix": (89.32, 94.84, 94.05),
}  # fmt: skip
REPORTED = {f"{d}_{v}": row[i] for v, row in AUTHORS_TABLE.items() for i, d in enumerate(("cub", "cars", "aircraft"))}
REPORTED |= {"cub_iv3_baseline": 82.22, "cub_iv3_snapmix": 85.54, "cub_d121_baseline": 84.23, "cub_d121_snapmix": 87.42}
REPORTED |= {"cub_r18_scratch_baseline": 64.98, "cub_r18_scratch_snapmix": 70.31}
REPORTED |= {"cub_r50_scratch_baseline": 66.92, "cub_r50_scratch_snapmix": 72.17}


def test_one_recipe_per_reported_result():
    expected = {f"{d}_{n}_{v}" for d in ("cub", "cars", "aircraft") for n in MODELS if n[0] == "r"
                for v in ("baseline", "snapmix")}  # fmt: skip
    expected |= {f"{d}_{n}_baseline_plus{m}" for d in ("cub", "cars", "aircraft") for n in ("r50", "r101")
                 for m in ("", "_snapmix")}  # fmt: skip
    expected |= {f"cub_{n}_{v}" for n in ("d121", "iv3") for v in ("baseline", "snapmix")}
    expected |= {f"cub_{n}_scratch_{v}" for n in ("r18", "r50") for v in ("baseline", "snapmix")}
    assert set(RECIPES) == expected == set(REPORTED)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_composes_with_the_authors_settings(name, tmp_path):
    cfg = compose_config([f"experiment=paper/{name}", "dataset.root=/x"], tmp_path)
    dataset, net, variant = name.split("_", 2)
    scratch = variant.startswith("scratch")
    snapmix = variant.endswith("snapmix")
    assert cfg.dataset.name == dataset and (cfg.dataset.image_size, cfg.dataset.resize_size) == (448, 512)
    assert cfg.model.name == MODELS[net] and cfg.model.pretrained == (not scratch)
    assert cfg.model.mid_level == variant.startswith("baseline_plus")
    assert cfg.mix._target_ == ("fgvc_mix.mixing.SnapMix" if snapmix else "fgvc_mix.mixing.NoMix")
    if snapmix:
        assert (cfg.mix.beta, cfg.mix.prob) == (5.0, 0.5 if scratch else 1.0)
    optim = cfg.optim
    assert optim.optimizer.lr == 0.01 and optim.optimizer.nesterov and optim.optimizer.weight_decay == 1e-4
    assert optim.optimizer.momentum == 0.9 and optim.scheduler.gamma == 0.1
    assert optim.epochs == cfg.trainer.max_epochs == (300 if scratch else 200)
    assert optim.backbone_lr_scale == (1.0 if scratch else 0.1)
    assert list(optim.scheduler.milestones) == ([150, 225, 270] if scratch else [80, 150, 180])
    assert cfg.trainer.accelerator == "gpu"
    # The authors' data pipeline: birds resized by the shorter side (warp=False), the rest warped square;
    # the last partial batch kept; Aircraft's banner left in.
    assert cfg.dataset.resize == ("shorter" if dataset == "cub" else "square") and cfg.dataset.drop_last is False
    assert cfg.dataset.options.get("crop_banner", False) is False
    if net.startswith("r"):  # ResNets: the authors' mid_dim is layer3's width; null builds it so (test_models.py)
        assert cfg.model.mid_level_channels is None
    comment = (PAPER_DIR / f"{name}.yaml").read_text()
    assert f"Reported (the authors' README, github.com/Shaoli-Huang/SnapMix): {REPORTED[name]:.2f}% top-1" in comment


@pytest.mark.parametrize("overrides", [["mix=snapmix", "mix.beta=3"], [], ["mix=none"], ["mix=cutmix"]])
def test_the_label_noise_meter_is_one_yardstick_whatever_the_mixer(overrides, tmp_path):
    """The meter scores every run on the same pairs: SnapMix's Beta(5, 5) boxes, not the run's ``mix.beta``."""
    cfg = compose_config(overrides, tmp_path)
    meter = build_from_config(cfg.callbacks.label_noise)
    assert isinstance(meter, LabelNoiseMeter) and meter.beta == 5.0


def test_recipes_paper_table_quotes_the_authors_figures():
    """Every recipe has one row in docs/recipes.md's paper table, with the authors' figure."""
    rows = {}
    for line in RECIPES_DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[4].startswith("`experiment=paper/"):
            rows[cells[4].strip("`").removeprefix("experiment=paper/")] = cells[3]
    assert rows == {name: f"{figure:.2f}" for name, figure in REPORTED.items()}
