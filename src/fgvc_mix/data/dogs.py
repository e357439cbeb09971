"""Stanford Dogs (Khosla, Jayadevaprakash, Yao & Fei-Fei, Novel Dataset for Fine-Grained
Image Categorization, FGVC workshop at CVPR 2011).

20,580 ImageNet images of 120 dog breeds: 12,000 train / 8,580 test; no official
validation split. Layout (``images.tar`` + ``lists.tar``): see :attr:`StanfordDogs.expected_layout`.
``lists.tar`` unpacks without a folder, so the two lists are also accepted at root level.
Class names come from the folder part of the paths (``n02085620-Chihuahua`` → ``Chihuahua``).
The optional ``Annotation/`` folder (``annotation.tar``) holds one Pascal-VOC XML file per
image (``Annotation/n02085620-Chihuahua/n02085620_10074``, no extension) with a ``bndbox`` per
dog; it is read per image when a box is asked for, so building the dataset stays fast.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import ClassVar

from .annotation_checks import check_not_empty, parse_int
from .annotation_matlab import load_mat, mat_field, mat_scalar
from .errors import DatasetError, LayoutError
from .image_list import Box, box_from_one_based
from .reader import Annotations, DatasetReader

LIST_DIRS = ("lists", "")
ANNOTATION_DIR = "Annotation"
VOC_FIELDS = ("xmin", "ymin", "xmax", "ymax")


class StanfordDogs(DatasetReader):
    """Stanford Dogs; ``classes`` are breed names, ``synsets`` the ImageNet folder names."""

    name = "dogs"
    homepage = "http://vision.stanford.edu/aditya86/ImageNetDogs/"
    expected_layout = """
        stanford_dogs/
            Images/n02085620-Chihuahua/n02085620_10074.jpg ...   (images.tar)
            lists/train_list.mat   file_list: Nx1 cell of "n02085620-Chihuahua/n02085620_5927.jpg",
            lists/test_list.mat    labels: Nx1, 1-based class id   (lists.tar; also accepted beside Images/)
            Annotation/n02085620-Chihuahua/n02085620_10074   one XML per image, a bndbox per dog
                                                             (annotation.tar; optional)
    """
    truth_files: ClassVar[dict[str, str]] = {"box": f"{ANNOTATION_DIR}/ (annotation.tar)"}
    root_candidates = ("", "stanford_dogs", "StanfordDogs")
    root_marker = "Images"

    def read(self) -> Annotations:
        split = self.split
        lists = {s: self._list_file(s) for s in ("train", "test")}
        if lists[split] is None:
            raise LayoutError(
                f"{self.name}: annotation file {self.root / 'lists' / f'{split}_list.mat'} is missing "
                f"(also looked for {self.root / f'{split}_list.mat'}). Extract lists.tar into {self.root / 'lists'}."
            )
        # Read both lists (when present) so every class gets its name even if one split lacks it.
        entries = {s: self._read_list(path) for s, path in lists.items() if path is not None}
        check_not_empty(entries[split], dataset=self.name, split=split, source=lists[split])
        folders: dict[int, str] = {}
        for s, rows in entries.items():
            for record, rel_path, class_id in rows:
                folder = rel_path.split("/", 1)[0]
                if folders.setdefault(class_id, folder) != folder:
                    raise DatasetError(
                        f"{self.name}: {lists[s]} entry {record}: class id {class_id} is used for both "
                        f"{folders[class_id]} and {folder}. Re-extract lists.tar."
                    )
        num_classes = max(folders)
        self.synsets = [folders.get(i, f"class_{i:03d}") for i in range(1, num_classes + 1)]
        classes = [s.split("-", 1)[-1] for s in self.synsets]
        samples = [(self.root / "Images" / rel_path, class_id - 1) for _, rel_path, class_id in entries[split]]
        return Annotations(samples, classes)

    @property
    def has_boxes(self) -> bool:
        return (self.root / ANNOTATION_DIR).is_dir()

    def boxed_images(self) -> int:
        """Images with an annotation file (their XML is parsed only when a box is asked for)."""
        return sum(self._annotation_file(index).is_file() for index in range(len(self)))

    def _annotation_file(self, index: int) -> Path:
        image = self.samples[index][0]
        return self.root / ANNOTATION_DIR / image.parent.name / image.stem

    def object_boxes(self, index: int) -> list[Box]:
        """The dogs' boxes in the image's XML (``xmin``..``xmax`` 1-based inclusive) as 0-based ``(x, y, w, h)``."""
        path = self._annotation_file(index)
        if not path.is_file():
            raise DatasetError(f"{self.name}: image {path.name} has no box file {path}. Re-extract annotation.tar.")
        try:
            boxes = []
            for box in ElementTree.parse(path).getroot().iter("bndbox"):
                boxes.append(box_from_one_based(*(float(box.findtext(f, "")) for f in VOC_FIELDS)))
        except (ElementTree.ParseError, ValueError):
            raise DatasetError(
                f"{self.name}: {path} is not a Pascal-VOC annotation with numeric bndbox fields. "
                "Re-extract annotation.tar."
            ) from None
        if not boxes:
            raise DatasetError(f"{self.name}: {path} has no bndbox. Re-extract annotation.tar.")
        return boxes

    def _list_file(self, split: str) -> Path | None:
        candidates = [self.root / d / f"{split}_list.mat" for d in LIST_DIRS]
        return next((p for p in candidates if p.is_file()), None)

    def _read_list(self, path: Path) -> list[tuple[int, str, int]]:
        """``(entry number, relative image path, 1-based class id)`` per line of a list file."""
        mat = load_mat(path, dataset=self.name)
        files = mat_field(mat, "file_list", dataset=self.name, source=path)
        labels = mat_field(mat, "labels", dataset=self.name, source=path)
        if len(files) != len(labels):
            raise DatasetError(
                f"{self.name}: {path} has {len(files)} files but {len(labels)} labels. Re-extract lists.tar."
            )
        rows = []
        for i, (file, label) in enumerate(zip(files, labels, strict=True), start=1):
            class_id = parse_int(mat_scalar(label), dataset=self.name, source=path, where=f"entry {i}")
            if class_id < 1:
                raise DatasetError(
                    f"{self.name}: {path} entry {i}: class id {class_id} is out of range (ids start at 1). "
                    "Re-extract lists.tar."
                )
            rows.append((i, str(mat_scalar(file)).replace("\\", "/"), class_id))
        return rows
