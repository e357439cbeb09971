"""End-to-end training images/s through the project's own configs, datamodule and Trainer, per mixer.

    python benchmarks/train_throughput.py --quick                      # CPU, tiny sizes, < 3 minutes
    python benchmarks/train_throughput.py --device cuda                # R50, 448 px, bf16, batch 32
    python benchmarks/train_throughput.py --device cuda --extra "snapmix_r101 mix=snapmix model=resnet101"

A CUB-200-2011-format tree of photo-like JPEGs (~500x375, like CUB's) is written to a
temporary folder; then, for each mixer, ``fgvc_mix.training.config.compose_config`` +
``fgvc_mix.train.build`` make the real ``FGVCDataModule`` (loader workers, decode, the
paper's resize/crop/flip) and ``Trainer`` (``trainer=gpu``: bf16 autocast; channels_last
as in train.yaml), and ``Trainer.fit`` runs ``--steps`` training batches. Images/s count
the batches after ``--warmup`` (timed from the start of the first counted batch to the end
of the last, the device synchronised at both ends). The bare train loader's images/s
(the same datamodule's ``train_dataloader()``, no model) is the ceiling the loader sets.
Each row prints one line with ``img/s``; rows run one after another, not interleaved, so
compare them within one run only.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from data_throughput import photo

from fgvc_mix.train import build
from fgvc_mix.training.config import compose_config

MIXERS = ("none", "cutmix", "snapmix")


def write_cub_tree(base: Path, count: int, classes: int, size: tuple[int, int], unique: int = 64) -> None:
    """An official-format CUB_200_2011 tree of ``count`` JPEGs, every 8th in the test split.

    Only ``unique`` distinct photos are encoded (sizes within 10% of ``size``); the rest are
    byte copies, so a tree of thousands is written in seconds and decodes like real photos.
    """
    rng = np.random.default_rng(0)
    names = [f"{c:03d}.Species_{c}" for c in range(1, classes + 1)]
    rows = []
    for n in range(1, count + 1):
        class_id = (n - 1) % classes + 1
        rel = f"{names[class_id - 1]}/img_{n:05d}.jpg"
        path = base / "images" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if n <= unique:
            width, height = (int(s * rng.uniform(0.9, 1.1)) for s in size)
            photo(rng, width, height).save(path, quality=90)
        else:
            shutil.copyfile(base / "images" / rows[(n - 1) % unique][1], path)
        rows.append((n, rel, class_id))
    (base / "images.txt").write_text("".join(f"{n} {rel}\n" for n, rel, _ in rows))
    (base / "image_class_labels.txt").write_text("".join(f"{n} {c}\n" for n, _, c in rows))
    (base / "train_test_split.txt").write_text("".join(f"{n} {int(n % 8 != 0)}\n" for n, _, _ in rows))
    (base / "classes.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(names, 1)))


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class StepTimer(pl.Callback):
    """Wall time of the training batches after ``warmup``, the device synchronised at both ends."""

    def __init__(self, warmup: int, device: str) -> None:
        self.warmup, self.device = warmup, device
        self.start = self.end = 0.0
        self.batches = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            synchronize(self.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        if batch_idx >= self.warmup:
            self.batches += 1

    def on_train_epoch_end(self, trainer, module) -> None:
        synchronize(self.device)
        self.end = time.perf_counter()


def overrides(args: argparse.Namespace, root: Path, steps: int) -> list[str]:
    return [
        "dataset=cub",
        f"dataset.root={root}",
        f"dataset.num_classes={args.classes}",
        f"dataset.batch_size={args.batch}",
        f"dataset.num_workers={args.workers}",
        f"dataset.image_size={args.size}",
        f"dataset.resize_size={args.resize}",
        f"model={args.model}",
        "model.pretrained=false",
        "trainer=gpu" if args.device == "cuda" else "trainer=cpu",
        "optim.epochs=1",
        f"+trainer.limit_train_batches={steps}",
        "+trainer.limit_val_batches=0",
        "+trainer.num_sanity_val_steps=0",
        "+trainer.enable_checkpointing=false",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
        "logger=[]",
        "callbacks=[]",
    ]


def train_rate(args: argparse.Namespace, root: Path, output: Path, extra: list[str]) -> float:
    """Training images/s of one configuration (``extra`` overrides on top of the common ones)."""
    cfg = compose_config([*overrides(args, root, args.warmup + args.steps), *extra], output)
    module, datamodule, trainer = build(cfg)
    timer = StepTimer(args.warmup, args.device)
    trainer.callbacks.append(timer)
    trainer.fit(module, datamodule=datamodule)
    if timer.batches != args.steps:
        raise RuntimeError(f"ran {timer.batches} timed batches, expected {args.steps}: write a larger tree (--images)")
    return timer.batches * cfg.dataset.batch_size / (timer.end - timer.start)


def loader_rate(args: argparse.Namespace, root: Path, output: Path) -> float:
    """Images/s of the bare train loader (decode + augmentation in its workers), batches after ``warmup``."""
    cfg = compose_config(overrides(args, root, args.warmup + args.steps), output)
    _, datamodule, _ = build(cfg)
    batches = iter(datamodule.train_dataloader())
    for _ in range(args.warmup):
        next(batches)
    start = time.perf_counter()
    for _ in range(args.steps):
        next(batches)
    return args.steps * args.batch / (time.perf_counter() - start)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="CPU smoke run: small_cnn, 64 px, batch 8, few steps")
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--resize", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20, help="timed training batches per row")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--images", type=int, default=None, help="tree size (default: enough for every row)")
    parser.add_argument("--mixers", default=",".join(MIXERS))
    parser.add_argument(
        "--extra", action="append", default=[], help='another row: "LABEL override override ..." (repeatable)'
    )
    args = parser.parse_args()
    if args.quick:
        args.model, args.size, args.resize, args.batch = "small_cnn", 64, 72, 8
        args.workers, args.steps, args.warmup, args.classes = min(args.workers, 2), 8, 2, 8
    return args


def main() -> None:
    args = parse_args()
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch"):  # one line per row, no banners
        logging.getLogger(name).setLevel(logging.ERROR)
    rows = {mixer: [f"mix={mixer}"] for mixer in args.mixers.split(",")}
    rows.update({label: extra for label, *extra in (row.split() for row in args.extra)})
    # Enough images for the largest batch of any row, so that no row runs out of its one epoch.
    largest = max([args.batch] + [int(o.split("=")[1]) for r in rows.values() for o in r if "batch_size=" in o])
    count = args.images or -(-(args.warmup + args.steps) * largest * 8 // 7)  # 1 in 8 goes to the test split
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "CUB_200_2011"
        write_cub_tree(root, count, args.classes, (500, 375))
        print(
            f"Training throughput: {args.model}, {args.size} px, batch {args.batch}, {args.workers} loader workers, "
            f"{args.device}, {args.steps} timed steps after {args.warmup}, {count}-image CUB tree (~500x375 JPEGs), "
            f"torch {torch.__version__}"
        )
        rates = {"loader": loader_rate(args, root, Path(tmp) / "out")}
        print(f"{'loader':<16} {rates['loader']:10.1f} img/s", flush=True)
        for label, extra in rows.items():
            rates[label] = train_rate(args, root, Path(tmp) / "out", extra)
            print(f"{label:<16} {rates[label]:10.1f} img/s", flush=True)
    if "none" in rates:
        for label in [label for label in rates if label not in ("none", "loader")]:
            print(f"{label} / none = {rates[label] / rates['none']:.3f}")


if __name__ == "__main__":
    main()
