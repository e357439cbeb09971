"""NABirds (Van Horn et al., Building a bird recognition app and large scale dataset with
citizen scientists, CVPR 2015).

48,562 photographs of North American birds: 23,929 train / 24,633 test; no official
validation split. The files follow the CUB layout with UUID image ids, plus ``hierarchy.txt``
(``<child class id> <parent class id>``); see :attr:`NABirds.expected_layout`. ``classes.txt``
lists 1,011 ids of a taxonomy, but images only carry the 555 leaf ids, which are sparse;
they are remapped to labels 0..554 in increasing id order.
"""

from __future__ import annotations

from .annotation_text import read_table
from .cub_style import CubStyleDataset, CubStyleSplit, sorted_ids
from .errors import DatasetError


class NABirds(CubStyleDataset):
    """NABirds with the 555 leaf classes as labels.

    ``class_ids`` holds the original NABirds class id of each label; ``boxes`` the
    per-sample ``(x, y, w, h)`` when ``bounding_boxes.txt`` is present.
    """

    name = "nabirds"
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
    root_candidates = ("", "nabirds")

    def label_ids(self, parsed: CubStyleSplit) -> list[str]:
        """The classes that have images (in every split, so train and test agree).

        On the real data these are exactly the 555 leaves of ``hierarchy.txt``.
        """
        class_ids = sorted_ids(parsed.all_class_ids)
        self._check_leaves(class_ids)
        return class_ids

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
