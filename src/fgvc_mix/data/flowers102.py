"""Oxford Flowers-102 (Nilsback & Zisserman, Automated Flower Classification over a Large
Number of Classes, ICVGIP 2008).

8,189 images of 102 flower species: 1,020 train (``trnid``) / 1,020 val (``valid``) /
6,149 test (``tstid``). Layout (``102flowers.tgz`` plus the two label files): see
:attr:`Flowers102.expected_layout`. The release has no class names, so classes are ``"001"`` ..
``"102"``. ``dataset.root`` may also be the parent ``flowers-102/`` folder (torchvision's name).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from .annotation_checks import check_class_id, check_not_empty, parse_int
from .annotation_matlab import load_mat, mat_field
from .errors import DatasetError
from .reader import Annotations, DatasetReader, check_use_val

SPLIT_FIELDS = {"train": ("trnid",), "val": ("valid",), "test": ("tstid",)}


class Flowers102(DatasetReader):
    """Flowers-102. ``use_val=False`` (default): ``train`` is trnid + valid and ``val`` is
    refused; ``use_val=True``: ``train`` is trnid and ``val`` is valid."""

    name = "flowers102"
    has_val = True
    homepage = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
    expected_layout = """
        flowers-102/
            imagelabels.mat   labels: 1x8189, class id (1-based) of image_00001.jpg ...
            setid.mat         trnid, valid, tstid: 1-based image numbers
            jpg/image_00001.jpg ...   (102flowers.tgz)
    """

    root_candidates = ("", "flowers-102")
    root_marker = "imagelabels.mat"

    def __init__(
        self,
        root: str | Path,
        split: str,
        transform: Callable[[Image.Image], Any] | None = None,
        skip_bad_images: bool = False,
        use_val: bool = False,
        draft_size: int | None = None,
    ) -> None:
        check_use_val(split, use_val, dataset=self.name, train_note=" (trnid + valid)")
        self.use_val = use_val
        super().__init__(root, split, transform, skip_bad_images, draft_size)

    def read(self) -> Annotations:
        labels_path, setid_path = self.root / "imagelabels.mat", self.root / "setid.mat"
        raw_labels = mat_field(
            load_mat(labels_path, dataset=self.name), "labels", dataset=self.name, source=labels_path
        )
        class_ids = [
            parse_int(v, dataset=self.name, source=labels_path, where=f"labels entry {i}")
            for i, v in enumerate(raw_labels, start=1)
        ]
        num_classes = max(class_ids, default=0)
        labels = [
            check_class_id(
                c, num_classes=num_classes, first=1, dataset=self.name, source=labels_path, where=f"labels entry {i}"
            )
            for i, c in enumerate(class_ids, start=1)
        ]

        setid = load_mat(setid_path, dataset=self.name)
        split = self.split
        fields = SPLIT_FIELDS[split] if self.use_val or split != "train" else ("trnid", "valid")
        samples = []
        for field in fields:
            for i, value in enumerate(mat_field(setid, field, dataset=self.name, source=setid_path), start=1):
                number = parse_int(value, dataset=self.name, source=setid_path, where=f"{field} entry {i}")
                if not 1 <= number <= len(labels):
                    raise DatasetError(
                        f"{self.name}: {setid_path} {field} entry {i}: image number {number} is out of "
                        f"range 1..{len(labels)} ({labels_path} has {len(labels)} labels). Re-download both files."
                    )
                samples.append((self.root / "jpg" / f"image_{number:05d}.jpg", labels[number - 1]))
        check_not_empty(samples, dataset=self.name, split=split, source=f"{setid_path} ({', '.join(fields)})")
        return Annotations(samples, [f"{i:03d}" for i in range(1, num_classes + 1)])
