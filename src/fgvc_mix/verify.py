"""Check a dataset on disk before training on it.

    python -m fgvc_mix.verify dataset=cub dataset.root=/data/CUB_200_2011

Every image the annotations list is decoded once, the way training loads it, so a missing,
empty or truncated file shows up here (all of them, with the reason) instead of hours into
a run. Prints the images per split and per class; the exit code is 0 only when every image
is readable (1: unreadable images, 2: the annotations or the root themselves are wrong).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from fgvc_mix.data.errors import DatasetError
from fgvc_mix.data.image_list import ImageListDataset
from fgvc_mix.data.registry import DATASETS, build_dataset
from fgvc_mix.training.config import CONFIG_PATH

EXIT_OK, EXIT_BAD_IMAGES, EXIT_BAD_DATASET = 0, 1, 2


@dataclass(frozen=True)
class SplitReport:
    """One split: its classes, the images listed per class, and the unreadable ones."""

    classes: list[str]
    counts: list[int]  # images listed per label (readable or not)
    problems: list[tuple[Path, str]]  # (path, reason) of each missing or unreadable image
    sizes: tuple[tuple[int, int], tuple[int, int]] | None = None  # (width, height) of the smallest and largest
    coverage: dict[str, int] | None = None  # images with boxes, parts, visible parts (the label-noise truth)

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class VerifyReport:
    name: str
    root: Path
    splits: dict[str, SplitReport]

    @property
    def problems(self) -> list[tuple[str, Path, str]]:
        """``(split, path, reason)`` of every missing or unreadable image."""
        return [(split, path, reason) for split, rep in self.splits.items() for path, reason in rep.problems]

    @property
    def exit_code(self) -> int:
        return EXIT_BAD_IMAGES if self.problems else EXIT_OK


def splits_to_scan(name: str, options: Mapping[str, Any]) -> tuple[str, ...]:
    """The splits that together list every image once under ``options``.

    Without ``use_val`` the official validation images are part of ``train`` (Aircraft's
    trainval, Flowers' trnid + valid) and ``val`` is refused, so it is only scanned with it.
    A dataset without that option (``folder``: its ``val/``, or val carved from train) always has it.
    """
    entry = DATASETS.get(name)  # an unknown name is reported by build_dataset
    with_val = entry is not None and entry.has_val and options.get("use_val", "use_val" not in entry.options)
    return ("train", "val", "test") if with_val else ("train", "test")


def verify_dataset(
    name: str,
    root: str | Path,
    options: Mapping[str, Any] | None = None,
    num_threads: int | None = None,
    console: Console | None = None,
) -> VerifyReport:
    """Build every split of dataset ``name`` and decode each listed image once.

    Annotation problems raise :class:`DatasetError` (from building the splits, before any
    image is read); image problems are collected in the report. ``skip_bad_images`` is
    forced off, or the bad images would be dropped before they could be reported. A
    progress bar goes to ``console`` when given.
    """
    options = {**(options or {}), "skip_bad_images": False}
    datasets: dict[str, ImageListDataset] = {"train": build_dataset(name, root, "train", **options)}
    present = getattr(datasets["train"], "split_sizes", None)  # the folder data: a split may have no images
    for split in splits_to_scan(name, options)[1:]:
        if present is None or present[split]:
            datasets[split] = build_dataset(name, root, split, **options)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    splits = {}
    with Progress(*columns, console=console, disable=console is None) as progress:
        for split, dataset in datasets.items():
            task = progress.add_task(f"{name} {split}", total=len(dataset))
            bad = dataset.find_unreadable(num_threads, on_image=lambda task=task: progress.advance(task))
            counts = Counter(dataset.targets)
            unreadable = {index for index, _ in bad}
            left_out = [(Path(path), "not an image file (left out)") for path in getattr(dataset, "ignored", [])]
            splits[split] = SplitReport(
                classes=list(dataset.classes),
                counts=[counts[label] for label in range(dataset.num_classes)],
                problems=[(dataset.samples[index][0], reason) for index, reason in bad] + left_out,
                sizes=size_range(path for i, (path, _) in enumerate(dataset.samples) if i not in unreadable),
                coverage=dataset.truth_coverage() if hasattr(dataset, "truth_coverage") else None,
            )
    return VerifyReport(name, Path(root), splits)


def size_range(paths: Iterable[Path]) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(width, height) of the smallest and the largest image by pixels; headers only, no decoding."""
    sizes = []
    for path in paths:
        with Image.open(path) as image:
            sizes.append(image.size)
    if not sizes:
        return None
    return min(sizes, key=lambda s: (s[0] * s[1], s)), max(sizes, key=lambda s: (s[0] * s[1], s))


def print_report(report: VerifyReport, console: Console) -> None:
    """Counts per class and split, every problem with its reason, and a one-line summary."""
    table = Table(box=box.SIMPLE, pad_edge=False, show_footer=True)
    table.add_column("label", justify="right", footer="")
    table.add_column("class", footer="total")
    for split, rep in report.splits.items():
        table.add_column(split, justify="right", footer=f"{rep.total:,}")
    classes = next(iter(report.splits.values())).classes  # every split of a dataset has the same classes
    for label, class_name in enumerate(classes):
        counts = [rep.counts[label] for rep in report.splits.values()]
        style = "red" if 0 in counts else None  # a class without images in a split is worth a look
        table.add_row(str(label), Text(class_name), *(f"{c:,}" for c in counts), style=style)
    console.print(table)

    for split, rep in report.splits.items():
        if rep.total:
            smallest = min(range(len(classes)), key=lambda label: rep.counts[label])
            size = "" if rep.sizes is None else " | image sizes {}x{} .. {}x{}".format(*rep.sizes[0], *rep.sizes[1])
            console.print(
                f"{split}: smallest class {classes[smallest]} ({rep.counts[smallest]:,} images){size}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    for split, rep in report.splits.items():
        if rep.coverage is not None:
            counts = ", ".join(f"{kind} {count:,}" for kind, count in rep.coverage.items())
            console.print(f"{split}: of {rep.total:,} images, with {counts}", markup=False, highlight=False)
    for split, path, reason in report.problems:
        console.print(f"{split}: {path}: {reason}", markup=False, highlight=False, soft_wrap=True)
    totals = ", ".join(f"{split} {rep.total:,}" for split, rep in report.splits.items())
    listed = sum(rep.total for rep in report.splits.values())
    verdict = f"{len(report.problems):,} missing or unreadable (listed above)" if report.problems else "all readable"
    console.print(
        f"{report.name} at {report.root}: {listed:,} images ({totals}), {len(classes)} classes: {verdict}",
        markup=False,
        highlight=False,
        soft_wrap=True,  # paths stay whole, for copying
    )


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="verify")
def main(cfg: DictConfig) -> None:
    console, errors = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    name = cfg.dataset.name
    if name in DATASETS and not DATASETS[name].on_disk:
        console.print(f"{name}: generated in memory, nothing on disk to verify.")
        raise SystemExit(EXIT_OK)
    if OmegaConf.is_missing(cfg.dataset, "root") or cfg.dataset.root is None:
        errors.print(f"dataset={name} needs dataset.root=<folder holding the {name} files>.")
        raise SystemExit(EXIT_BAD_DATASET)
    options = OmegaConf.to_container(cfg.dataset.get("options") or {}, resolve=True)
    try:
        report = verify_dataset(name, cfg.dataset.root, options, cfg.threads, console)
    except DatasetError as err:
        errors.print(str(err), markup=False, highlight=False)
        raise SystemExit(EXIT_BAD_DATASET) from None
    print_report(report, console)
    raise SystemExit(report.exit_code)


if __name__ == "__main__":
    main()
