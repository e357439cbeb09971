"""A user's own images (``dataset=folder``): class-per-folder trees or CSV lists, no reader to write.

The layouts are listed by :mod:`fgvc_mix.data.folder_layout`. Here the labels become classes
(sorted names, or sorted numbers when every label is a number), and a split the data does not
have is carved from train, per class, with a fixed seed: a single ``root/<class>/`` tree gets
its val and test this way, split folders or CSV lists without ``val`` get their val. The same
images as a tree or as CSV lists therefore give the same splits and labels.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import DatasetError
from .folder_layout import Listing, Row, list_images
from .reader import SPLITS, Annotations, DatasetReader

log = logging.getLogger(__name__)

DEFAULT_SHARES = (0.8, 0.1, 0.1)
CARVE_ORDER = ("test", "val")  # with the same seed, carving test first keeps it fixed whatever val's share


class ImageFolderData(DatasetReader):
    """Images of ``root`` in one of three layouts; ``classes`` are the folder names or CSV labels, sorted.

    ``shares`` (``dataset.options.split``) are the train/val/test shares of each class used to
    carve the splits the data lacks; ``seed`` fixes the carving. ``ignored`` lists this split's
    files that are not images (left out, with a warning); ``split_sizes`` the images of every split.
    """

    name = "folder"
    has_val = True  # the data's own val/ or val.csv, else carved from train
    expected_layout = """
        <root>/train.csv, test.csv, val.csv (optional)   rows path,label (paths relative to root)
    or  <root>/train/<class>/*.jpg, test/<class>/*.jpg, val/<class>/*.jpg (test/ and val/ optional)
    or  <root>/<class>/*.jpg                             cut by dataset.options.split=[train,val,test]
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        transform: Callable[[Image.Image], Any] | None = None,
        shares: Sequence[float] = DEFAULT_SHARES,
        seed: int = 0,
        skip_bad_images: bool = False,
        draft_size: int | None = None,
    ) -> None:
        self.shares = check_shares(shares)
        self.seed = seed
        super().__init__(root, split, transform, skip_bad_images, draft_size)

    def read(self) -> Annotations:
        listing = list_images(self.root)
        classes = class_names(listing)
        index = {name: label for label, name in enumerate(classes)}
        given = {split: [(row.path, index[row.label]) for row in rows] for split, rows in listing.splits.items()}
        samples = carve_missing(given, self.shares, self.seed)
        self.split_sizes = {split: len(rows) for split, rows in samples.items()}
        if not samples[self.split]:
            other = ", or set dataset.val_source=test" if self.split == "val" else ""
            raise DatasetError(
                f"folder: {self.root} has no {self.split} images (no {self.split}/ folder or {self.split}.csv, "
                f"and dataset.options.split gives {self.split} a share of 0); give it a share{other}."
            )
        self.ignored = listing.ignored.get(self.split, [])
        if self.ignored:
            log.warning(
                "folder: left out %d file(s) of the %s split that are not images (first: %s); "
                "move them out of the class folders.",
                len(self.ignored),
                self.split,
                self.ignored[0],
            )
        if self.split == "train":
            warn_duplicates(samples)
        return Annotations([(Path(path), label) for path, label in samples[self.split]], classes)


def check_shares(shares: Sequence[float]) -> dict[str, float]:
    """``[train, val, test]`` as a dict; shares are >= 0, train's > 0, and they sum to 1."""
    values = list(shares) if isinstance(shares, Sequence) and not isinstance(shares, str) else []
    ok = len(values) == 3 and all(isinstance(v, int | float) and v >= 0 for v in values)
    if not ok or values[0] <= 0 or not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise DatasetError(
            f"folder: dataset.options.split must be [train, val, test] shares that sum to 1 with train > 0, "
            f"got {shares!r}; e.g. dataset.options.split=[0.8,0.1,0.1]."
        )
    return dict(zip(SPLITS, (float(v) for v in values), strict=True))


def class_names(listing: Listing) -> list[str]:
    """Train's labels, sorted (numerically when all are numbers); other splits may use only those.

    Numeric labels are written without leading zeros, so ``07`` and ``7`` are one class.
    """
    rows = [row for split_rows in listing.splits.values() for row in split_rows]
    numbers = [row for row in rows if row.label.isdigit()]
    names = [row for row in rows if not row.label.isdigit()]
    if numbers and names:
        raise DatasetError(
            f"folder: labels mix names and numbers ({names[0].source}: {names[0].label!r}, "
            f"{numbers[0].source}: {numbers[0].label!r}); use class names throughout or numbers throughout."
        )
    if numbers:
        for split_rows in listing.splits.values():
            split_rows[:] = [Row(row.path, str(int(row.label)), row.source) for row in split_rows]
    key = int if numbers else str
    train = sorted({row.label for row in listing.splits["train"]}, key=key)
    known = set(train)
    for split, split_rows in listing.splits.items():
        stray = next((row for row in split_rows if row.label not in known), None)
        if stray is not None:
            raise DatasetError(
                f"folder: class {stray.label!r} has {split} images ({stray.source}) but no train images; "
                "add its train images or remove it from that split."
            )
    return train


def carve_missing(
    given: dict[str, list[tuple[str, int]]], shares: dict[str, float], seed: int
) -> dict[str, list[tuple[str, int]]]:
    """Every split: the given ones as they are, the missing ones carved from train, class by class.

    A missing split takes its share of the images (``shares``) out of train's pool, rounded per
    class, at least one image of every class that keeps one for train.
    """
    missing = [split for split in CARVE_ORDER if split not in given and shares[split] > 0]
    pool = shares["train"] + sum(shares[split] for split in missing)
    samples = {split: list(given.get(split, [])) for split in SPLITS}
    if not missing:
        return samples
    members: dict[int, list[str]] = defaultdict(list)
    for path, label in sorted(given["train"]):
        members[label].append(path)
    samples["train"] = []
    rng = np.random.default_rng(seed)
    for label in sorted(members):
        paths = members[label]
        order = rng.permutation(len(paths)).tolist()
        for split in missing:
            left = len(order)
            count = min(left - 1, max(1, round(shares[split] / pool * len(paths))))
            samples[split] += [(paths[i], label) for i in order[:count]]
            order = order[count:]
        samples["train"] += [(paths[i], label) for i in order]
    return {split: sorted(rows) for split, rows in samples.items()}


def warn_duplicates(samples: dict[str, list[tuple[str, int]]]) -> int:
    """Warn about images whose bytes are in more than one split; returns how many such contents.

    Only files of equal size are read and hashed, so a tree without duplicates costs a ``stat`` per file.
    """
    by_size: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for split, rows in samples.items():
        for path, _ in rows:
            by_size[os.path.getsize(path)].append((split, path))
    by_content: dict[bytes, list[tuple[str, str]]] = defaultdict(list)
    for group in by_size.values():
        if len({split for split, _ in group}) > 1:
            for split, path in group:
                by_content[file_digest(path)].append((split, path))
    shared = [group for group in by_content.values() if len({split for split, _ in group}) > 1]
    if shared:
        split_a, path_a = shared[0][0]
        split_b, path_b = next(item for item in shared[0] if item[0] != split_a)
        log.warning(
            "folder: %d image(s) are in more than one split (same bytes; e.g. %s in %s = %s in %s); "
            "scores on those splits overstate accuracy: remove the copies.",
            len(shared),
            path_a,
            split_a,
            path_b,
            split_b,
        )
    return len(shared)


def file_digest(path: str) -> bytes:
    """A 16-byte hash of the file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.blake2b(handle.read(), digest_size=16).digest()
