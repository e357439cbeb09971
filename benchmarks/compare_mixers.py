"""Side-by-side comparison of the mixers on the synthetic fine-grained data, on CPU, with several seeds.

    python benchmarks/compare_mixers.py [--epochs 3] [--seeds 3] [--train-size 1600] [key=value ...]

Trains none / mixup / cutmix / snapmix (each with the settings of the SnapMix paper's
comparison in ``conf/mix/``) for every seed through ``fgvc_mix.train.train``, with the
package's own configs, and prints test accuracy (last weights) as mean ± std over the
seeds, and the label noise of each final model: the MAE of SnapMix's CAM weights and of
CutMix's area weights against the ground-truth part shares on the same boxes
(``fgvc_mix.label_noise``, Huang, Wang & Tao, AAAI 2021, claim SnapMix's is lower).
Extra ``key=value`` arguments are Hydra overrides for every run (e.g.
``model.backbone_options.width=16``). Each run writes under ``--output-dir``; the
results also go to ``results.json`` there.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import time
from datetime import datetime
from pathlib import Path

import torch

from fgvc_mix.config import compose_config
from fgvc_mix.label_noise import checkpoint_label_noise
from fgvc_mix.train import train

MIXERS = ("none", "mixup", "cutmix", "snapmix", "snapmix_scratch")
DEFAULT_MIXERS = ["none", "mixup", "cutmix", "snapmix_scratch"]  # from scratch, as the demo trains
QUIET = ["trainer=cpu", "logger=csv", "~callbacks.progress_bar", "~callbacks.mixed_images"]
QUIET += ["+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false"]


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else math.nan
    return f"{statistics.fmean(values):.4f} ± {spread:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mixers", nargs="+", default=DEFAULT_MIXERS, choices=MIXERS)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 per mixer")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=1600, help="synthetic training images")
    parser.add_argument("--label-pairs", type=int, default=512, help="test images scored by the label-noise meter")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the CPU is often shared)")
    parser.add_argument("--output-dir", type=Path, default=None, help="default outputs/compare_mixers/<time>")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides for every run, e.g. dataset.options.test_size=400"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning_fabric").setLevel(logging.WARNING)
    root = args.output_dir or Path("outputs/compare_mixers") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    common = [*QUIET, f"optim.epochs={args.epochs}", f"dataset.options.train_size={args.train_size}"]

    runs = []
    for mixer in args.mixers:
        for seed in range(args.seeds):
            output_dir = root / f"{mixer}-seed{seed}"
            start = time.perf_counter()
            metrics = train(compose_config([*common, f"mix={mixer}", f"seed={seed}", *args.overrides], output_dir))
            noise = checkpoint_label_noise(output_dir / "checkpoints" / "last.ckpt", args.label_pairs, seed=0)
            runs.append(
                {
                    "mixer": mixer,
                    "seed": seed,
                    "test_acc": metrics["test/acc"],
                    "label_mae_snapmix": noise.snapmix.mae,
                    "label_mae_cutmix": noise.cutmix.mae,
                    "label_mae_ratio": noise.mae_ratio,
                    "seconds": time.perf_counter() - start,
                }
            )
            print(
                f"{mixer:<8} seed {seed}: test/acc {metrics['test/acc']:.4f}, label MAE snapmix "
                f"{noise.snapmix.mae:.4f} / cutmix {noise.cutmix.mae:.4f} = {noise.mae_ratio:.3f} "
                f"({runs[-1]['seconds']:.0f} s)",
                flush=True,
            )

    print(
        f"\n{args.epochs} epochs, {args.train_size} training images, seeds 0..{args.seeds - 1}, "
        f"label noise on {args.label_pairs} test images (SnapMix boxes, Beta(5, 5)); mean ± std over seeds"
    )
    header = ["mixer", "test acc", "label MAE (SnapMix rule)", "label MAE (CutMix rule)", "SnapMix/CutMix MAE"]
    print(f"{header[0]:<8} {header[1]:<17} {header[2]:<24} {header[3]:<23} {header[4]}")
    for mixer in args.mixers:
        rows = [run for run in runs if run["mixer"] == mixer]
        columns = ("test_acc", "label_mae_snapmix", "label_mae_cutmix", "label_mae_ratio")
        acc, snap, cut, ratio = (mean_std([row[c] for row in rows]) for c in columns)
        print(f"{mixer:<8} {acc:<17} {snap:<24} {cut:<23} {ratio}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps({"args": vars(args) | {"output_dir": str(root)}, "runs": runs}))
    print(f"Runs and results.json under {root}")


if __name__ == "__main__":
    main()
