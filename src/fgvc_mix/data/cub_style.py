"""The "CUB-style" text files shared by CUB-200-2011 and NABirds, and the reader base for them.

``images.txt``, ``image_class_labels.txt``, ``train_test_split.txt``, ``classes.txt`` and the
optional ``bounding_boxes.txt`` and ``parts/part_locs.txt`` (``<id> <part id> <x> <y> <visible>``)
under one folder, each ``<id> <value>`` per line. CUB and NABirds differ only in which class ids
become labels (:meth:`CubStyleDataset.label_ids`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from .annotation_checks import check_not_empty
from .annotation_text import read_numbers, read_pairs, read_table
from .errors import DatasetError
from .image_list import Box, Point
from .reader import Annotations, DatasetReader

PART_LOCS = "parts/part_locs.txt"


@dataclass(frozen=True)
class CubStyleEntry:
    """One image of the requested split, before its class id is mapped to a label."""

    image_id: str
    path: Path
    class_id: str
    label_line: int  # line of image_class_labels.txt, for error messages


@dataclass(frozen=True)
class CubStyleSplit:
    entries: list[CubStyleEntry]
    class_names: dict[str, str]  # class id -> name, as in classes.txt
    all_class_ids: set[str]  # class ids used by any image of any split
    boxes: list[Box] | None  # aligned with entries, None without bounding_boxes.txt
    labels_file: Path
    parts: list[list[Point] | None] | None = None  # visible keypoints per entry (None: no line); None: no file


def read_cub_style(base: Path, split: str, *, dataset: str) -> CubStyleSplit:
    """Parse the CUB-style text files under ``base`` and keep the images of ``split``.

    Images keep ``images.txt`` order. Every image must have a label and a split entry;
    ``bounding_boxes.txt`` is optional.
    """
    images_file = base / "images.txt"
    labels_file = base / "image_class_labels.txt"
    split_file = base / "train_test_split.txt"
    images = read_table(images_file, dataset=dataset)
    labels = read_table(labels_file, dataset=dataset)
    is_train = read_table(split_file, dataset=dataset)
    class_names = {key: name for key, (_, name) in read_table(base / "classes.txt", dataset=dataset).items()}

    want = "1" if split == "train" else "0"
    entries = []
    for image_id, (line, rel_path) in images.items():
        for table, source in ((labels, labels_file), (is_train, split_file)):
            if image_id not in table:
                raise DatasetError(
                    f"{dataset}: image id {image_id} ({images_file} line {line}) has no entry in "
                    f"{source}. The annotation files are inconsistent; re-extract the archive."
                )
        split_line, flag = is_train[image_id]
        if flag not in ("0", "1"):
            raise DatasetError(
                f"{dataset}: {split_file} line {split_line}: expected 1 (train) or 0 (test), got {flag!r}."
            )
        if flag == want:
            label_line, class_id = labels[image_id]
            entries.append(CubStyleEntry(image_id, base / "images" / rel_path, class_id, label_line))
    check_not_empty(entries, dataset=dataset, split=split, source=split_file)

    boxes = None
    boxes_file = base / "bounding_boxes.txt"
    if boxes_file.is_file():
        boxes = _read_boxes(boxes_file, [e.image_id for e in entries], dataset=dataset)
    parts = None
    parts_file = base / PART_LOCS
    if parts_file.is_file():
        parts = _read_visible_parts(parts_file, [e.image_id for e in entries], dataset=dataset)
    all_class_ids = {class_id for _, class_id in labels.values()}
    return CubStyleSplit(entries, class_names, all_class_ids, boxes, labels_file, parts)


def _read_boxes(path: Path, image_ids: Sequence[str], *, dataset: str) -> list[Box]:
    rows = read_numbers(path, image_ids, dataset=dataset, fields="<x> <y> <width> <height>")
    return [(x, y, w, h) for x, y, w, h in rows]


def _read_visible_parts(path: Path, image_ids: Sequence[str], *, dataset: str) -> list[list[Point] | None]:
    """The ``visible=1`` keypoints of each image in ``image_ids`` (``None`` for an image without a line)."""
    visible: dict[str, list[Point]] = {}
    for line, image_id, values in read_pairs(path, dataset=dataset):
        fields = values.split()
        if len(fields) != 4 or fields[3] not in ("0", "1"):
            raise DatasetError(f"{dataset}: {path} line {line}: expected '<image id> <part id> <x> <y> <visible 0|1>'.")
        try:
            point = (float(fields[1]), float(fields[2]))
        except ValueError:
            raise DatasetError(f"{dataset}: {path} line {line}: x and y must be numbers, got {values!r}.") from None
        parts = visible.setdefault(image_id, [])
        if fields[3] == "1":
            parts.append(point)
    return [visible.get(image_id) for image_id in image_ids]


def assign_labels(split: CubStyleSplit, class_ids: Sequence[str], *, dataset: str) -> list[tuple[Path, int]]:
    """Map each entry's class id to its index in ``class_ids`` (the 0-based label)."""
    index = {class_id: i for i, class_id in enumerate(class_ids)}
    samples = []
    for entry in split.entries:
        if entry.class_id not in index:
            raise DatasetError(
                f"{dataset}: {split.labels_file} line {entry.label_line}: class id {entry.class_id} "
                f"is not one of the {len(class_ids)} classes ({class_ids[0]}..{class_ids[-1]}). "
                "The annotation files are corrupt or from another release; re-extract the archive."
            )
        samples.append((entry.path, index[entry.class_id]))
    return samples


def sorted_ids(ids: Iterable[str]) -> list[str]:
    """Sort class ids numerically when they are numbers (``"10"`` after ``"9"``)."""
    return sorted(ids, key=lambda s: (0, int(s), "") if s.isdigit() else (1, 0, s))


class CubStyleDataset(DatasetReader):
    """A release in the CUB-style files; ``class_ids`` holds the class id in the files of each label."""

    root_marker = "images.txt"
    truth_files: ClassVar[dict[str, str]] = {
        "parts": f"{PART_LOCS} and bounding_boxes.txt",
        "box": "bounding_boxes.txt",
    }

    def read(self) -> Annotations:
        parsed = read_cub_style(self.root, self.split, dataset=self.name)
        self.class_ids = self.label_ids(parsed)
        classes = [parsed.class_names.get(c, f"class {c}") for c in self.class_ids]
        samples = assign_labels(parsed, self.class_ids, dataset=self.name)
        return Annotations(samples, classes, parsed.boxes, parsed.parts)

    def label_ids(self, parsed: CubStyleSplit) -> list[str]:
        """The class ids that become labels 0, 1, ...: every class of ``classes.txt``, in id order."""
        return sorted_ids(parsed.class_names)
