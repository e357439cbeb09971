"""NABirds (Van Horn et al., Building a bird recognition app and large scale dataset with
citizen scientists, CVPR 2015).

48,562 photographs of North American birds: 23,929 train / 24,633 test; no official
validation split. The files follow the CUB layout with UUID image ids, plus ``hierarchy.txt``
(``<child class id> <parent class id>``); see :attr:`NABirds.expected_layout`. ``classes.txt``
lists 1,011 ids of a taxonomy, but images only carry the 555 leaf ids, which are sparse;
they are remapped to labels 0..554 in increasing id order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from .cub import assign_labels, read_cub_style, sorted_ids
from .image_list import DatasetError, ImageListDataset, check_split, find_root, read_table


class NABirds(ImageListDataset):
    """NABirds with the 555 leaf classes as labels.

    ``class_ids`` holds the original NABirds class id of each label; ``boxes`` the
    per-sample ``(x, y, w, h)`` when ``bounding_boxes.txt`` is present.
    """

    name = "nabirds"
    has_val = False
    homepage = "https://dl.allaboutbirds.org/nabirds"
    expected_layout = """
        nabirds/
            images.txt               <image uuid> <class folder>/<file>.jpg
            image_class_labels.txt   <image uuid> <class id>
            train_test_split.txt     <image uuid> <1 = train, 0 = test>
            classes.txt              <class id> <class name>
            hierarchy.txt            <child class id> <parent class id>   (optional)
            bounding_boxes.txt       <image uuid> <x> <y> <width> <height>   (optional)
            images/0295/<uuid>.jpg ...
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
        self.root = find_root(root, dataset=self.name, candidates=["", "nabirds"], marker="images.txt")
        self.split = split
        parsed = read_cub_style(self.root, split, dataset=self.name)
        # The label set is the classes that have images (in every split, so train and test
        # agree); on the real data these are exactly the 555 leaves of hierarchy.txt.
        self.class_ids = sorted_ids(parsed.all_class_ids)
        self._check_leaves(self.class_ids)
        classes = [parsed.class_names.get(c, f"class {c}") for c in self.class_ids]
        samples = assign_labels(parsed, self.class_ids, dataset=self.name)
        super().__init__(samples, classes, transform, skip_bad_images, boxes=parsed.boxes, draft_size=draft_size)

    def _check_leaves(self, class_ids: list[str]) -> None:
        """Images labelled with an inner taxonomy node would make the labels ambiguous."""
        hierarchy_file = self.root / "hierarchy.txt"
        if not hierarchy_file.is_file():
            return
        parents = {parent for _, parent in read_table(hierarchy_file, dataset=self.name).values()}
        inner = [c for c in class_ids if c in parents]
        if inner:
            raise DatasetError(
                f"{self.name}: image_class_labels.txt labels images with class id(s) {', '.join(inner[:5])} "
                f"which are not leaves in {hierarchy_file}. The annotation files are inconsistent; "
                "re-extract the archive."
            )
