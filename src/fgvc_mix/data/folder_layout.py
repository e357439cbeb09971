"""Listing a user's own images as they lie on disk: one of three layouts, found under ``dataset.root``.

1. CSV lists: ``train.csv`` (+ ``test.csv``, ``val.csv``), rows ``path,label``, paths relative to root;
2. split folders: ``train/<class>/*`` (+ ``test/``, ``val/``);
3. one class-per-folder tree: ``<class>/*`` (the reader cuts it into splits).

This module only lists: each split as ``(image path, label text)`` rows, plus the files it left
out because they are not images. Turning label texts into classes is :mod:`fgvc_mix.data.folder`'s job.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from .decoding import IMAGE_SUFFIXES
from .errors import DatasetError, LayoutError
from .reader import SPLITS

HEADER_PATHS = ("path", "file", "filename", "image")
HEADER_LABELS = ("label", "class", "class_name")


@dataclass(frozen=True)
class Row:
    """One listed image: its path, its label as written, and where it was written (for messages)."""

    path: str  # text, not Path: a 10k-image tree lists several times faster
    label: str
    source: str  # "train.csv line 7" or the class folder


@dataclass
class Listing:
    """Every split the data on disk has, as rows; ``ignored``: each split's non-image files in class folders."""

    layout: str  # "csv" | "splits" | "tree"
    splits: dict[str, list[Row]]
    ignored: dict[str, list[str]] = field(default_factory=dict)


def list_images(root: Path) -> Listing:
    """The layout under ``root`` and its rows; CSV lists win over folders, split folders over one tree."""
    if (root / "train.csv").is_file():
        return Listing("csv", {s: read_csv(root, root / f"{s}.csv") for s in SPLITS if (root / f"{s}.csv").is_file()})
    folders = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    split_folders = [name for name in folders if name in SPLITS]
    if not split_folders:
        return list_tree(root, "tree", "train")
    if "train" not in split_folders or len(split_folders) != len(folders):
        others = [name for name in folders if name not in SPLITS]
        found = ", ".join(f"{name}/" for name in folders)
        raise LayoutError(
            f"folder: {root} mixes split folders and other folders ({found}); put one folder per class under "
            f"train/ (and test/, val/)" + (f", or move {', '.join(others)} there" if others else "") + "."
        )
    listing = Listing("splits", {})
    for split in split_folders:
        part = list_tree(root / split, "splits", split)
        listing.splits[split] = part.splits[split]
        listing.ignored[split] = part.ignored[split]
    return listing


def list_tree(top: Path, layout: str, split: str) -> Listing:
    """Rows of ``top/<class>/**`` (class = first folder name), sorted; an empty class folder is an error."""
    rows: list[Row] = []
    ignored: list[str] = []
    classes = sorted(entry.name for entry in os.scandir(top) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise LayoutError(f"folder: {top} has no class folders; put each class's images in {top}/<class name>/.")
    for name in classes:
        found = []
        for folder, subfolders, files in os.walk(top / name, followlinks=True):  # as torchvision's ImageFolder
            subfolders[:] = [d for d in subfolders if not d.startswith(".")]
            for file in files:
                if not file.startswith("."):
                    is_image = os.path.splitext(file)[1].lower() in IMAGE_SUFFIXES
                    (found if is_image else ignored).append(os.path.join(folder, file))
        if not found:
            raise DatasetError(
                f"folder: class folder {top / name} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                "add its images or remove the folder."
            )
        rows += [Row(path, name, str(top / name)) for path in sorted(found)]
    return Listing(layout, {split: rows}, {split: sorted(ignored)})


def read_csv(root: Path, path: Path) -> list[Row]:
    """Rows of one ``path,label`` list (an optional header line); every file it names must exist."""
    rows: list[Row] = []
    missing: list[Row] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        for record in reader:
            cells = [cell.strip() for cell in record]
            if not any(cells) or (reader.line_num == 1 and is_header(cells)):
                continue
            where = f"{path.name} line {reader.line_num}"
            if len(cells) < 2 or not cells[0] or not cells[1]:
                raise DatasetError(
                    f"folder: {where}: expected path,label, got {','.join(record)!r}; "
                    "write one image per line as <path relative to dataset.root>,<label>."
                )
            row = Row(os.path.normpath(os.path.join(root, cells[0])), cells[1], where)
            (rows if os.path.isfile(row.path) else missing).append(row)
    if missing:
        first = missing[0]
        raise DatasetError(
            f"folder: {first.source}: {first.path} does not exist ({len(missing)} row(s) of {path} name missing "
            "files); fix the paths (relative to dataset.root) or remove those rows."
        )
    if not rows:
        raise DatasetError(f"folder: {path} lists no images; add rows of path,label.")
    return rows


def is_header(cells: list[str]) -> bool:
    """``path,label`` (or ``file,class`` ...) as a first line names the columns, not an image."""
    return len(cells) >= 2 and cells[0].lower() in HEADER_PATHS and cells[1].lower() in HEADER_LABELS
