"""CUB-200-2011 (Wah, Branson, Welinder, Perona & Belongie, Caltech-UCSD Birds-200-2011,
CNS-TR-2011-001, 2011).

11,788 photographs of 200 bird species: 5,994 train / 5,794 test (``train_test_split.txt``);
no official validation split. The layout of the official ``CUB_200_2011.tgz`` is
:attr:`CUB200.expected_layout`; ``dataset.root`` may point at ``CUB_200_2011/`` or at its parent. The same "CUB-style"
files describe NABirds, which reuses :func:`read_cub_style` below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .image_list import (
    Box,
    DatasetError,
    ImageListDataset,
    check_not_empty,
    check_split,
    find_root,
    read_table,
)


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
    all_class_ids = {class_id for _, class_id in labels.values()}
    return CubStyleSplit(entries, class_names, all_class_ids, boxes, labels_file)


def _read_boxes(path: Path, image_ids: Sequence[str], *, dataset: str) -> list[Box]:
    table = read_table(path, dataset=dataset)
    boxes = []
    for image_id in image_ids:
        if image_id not in table:
            raise DatasetError(f"{dataset}: image id {image_id} has no bounding box in {path}.")
        line, values = table[image_id]
        try:
            x, y, w, h = (float(v) for v in values.split())
        except ValueError:
            raise DatasetError(f"{dataset}: {path} line {line}: expected '<id> <x> <y> <width> <height>'.") from None
        boxes.append((x, y, w, h))
    return boxes


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


def sorted_ids(ids: Sequence[str] | set[str]) -> list[str]:
    """Sort class ids numerically when they are numbers (``"10"`` after ``"9"``)."""
    return sorted(ids, key=lambda s: (0, int(s), "") if s.isdigit() else (1, 0, s))


def pretty_cub_name(name: str) -> str:
    """``001.Black_footed_Albatross`` → ``Black footed Albatross``."""
    return name.split(".", 1)[-1].replace("_", " ")


class CUB200(ImageListDataset):
    """CUB-200-2011 birds; ``classes`` are the folder names (``001.Black_footed_Albatross``).

    ``display_names`` holds readable names; ``boxes`` the per-sample ``(x, y, w, h)``
    when ``bounding_boxes.txt`` is present (else None).
    """

    name = "cub"
    has_val = False
    homepage = "https://www.vision.caltech.edu/datasets/cub_200_2011/"
    expected_layout = """
        CUB_200_2011/
            images.txt               <image id> <class folder>/<file>.jpg
            image_class_labels.txt   <image id> <class id, 1-based>
            train_test_split.txt     <image id> <1 = train, 0 = test>
            classes.txt              <class id> 001.Black_footed_Albatross
            bounding_boxes.txt       <image id> <x> <y> <width> <height>   (optional)
            images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg ...
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        transform: Callable[[Image.Image], Any] | None = None,
        skip_bad_images: bool = False,
        draft_size: int | None = None,
    ) -> None:
        check_split(split, dataset=self.name, has_val=self.has_val)
        self.root = find_root(root, dataset=self.name, candidates=["", "CUB_200_2011"], marker="images.txt")
        self.split = split
        parsed = read_cub_style(self.root, split, dataset=self.name)
        class_ids = sorted_ids(parsed.class_names)
        classes = [parsed.class_names[c] for c in class_ids]
        self.display_names = [pretty_cub_name(c) for c in classes]
        samples = assign_labels(parsed, class_ids, dataset=self.name)
        super().__init__(samples, classes, transform, skip_bad_images, boxes=parsed.boxes, draft_size=draft_size)
