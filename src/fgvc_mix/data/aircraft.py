"""FGVC-Aircraft 2013b (Maji, Rahtu, Kannala, Blaschko & Vedaldi, Fine-Grained Visual
Classification of Aircraft, arXiv:1306.5151, 2013).

10,000 images at three levels: 100 variants, 70 families, 30 manufacturers. Splits:
3,334 train / 3,333 val (6,667 trainval) / 3,333 test. The layout of
``fgvc-aircraft-2013b.tar.gz`` is :attr:`FGVCAircraft.expected_layout`.

Class names contain spaces and slashes (``1042824 Cessna 172``, ``0062765 F/A-18``), so
each line is split once. Every image carries a 20-pixel copyright banner at the bottom,
which the dataset's README asks users to remove; with ``crop_banner`` (the default) it is
cropped before the transform. The SnapMix authors keep it, so the paper recipes set
``dataset.options.crop_banner=false``.
``dataset.root`` may be ``fgvc-aircraft-2013b/``, its ``data/`` folder, or their parent.
The optional ``images_box.txt`` (``<image id> <xmin> <ymin> <xmax> <ymax>``, the top-left
pixel is (1, 1)) gives each aircraft's box, read as ``(xmin - 1, ymin - 1, width, height)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from .annotation_checks import check_not_empty
from .annotation_text import read_names, read_numbers, read_pairs
from .decoding import decode_rgb
from .errors import BadImageError, DatasetError
from .image_list import Box, box_from_one_based
from .reader import Annotations, DatasetReader, check_use_val

BANNER_HEIGHT = 20
CLASS_FILES = {"variant": "variants.txt", "family": "families.txt", "manufacturer": "manufacturers.txt"}
BOX_FILE = "images_box.txt"


class FGVCAircraft(DatasetReader):
    """FGVC-Aircraft at ``level`` variant (100 classes), family (70) or manufacturer (30).

    ``use_val=False`` (the paper's protocol): ``train`` reads ``trainval`` and ``val`` is
    refused, since its images are in train. ``use_val=True``: ``train`` and ``val`` are the
    official halves.
    """

    name = "aircraft"
    has_val = True
    homepage = "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/"
    expected_layout = """
        fgvc-aircraft-2013b/data/
            variants.txt  families.txt  manufacturers.txt     one class name per line
            images_{variant,family,manufacturer}_{train,val,trainval,test}.txt
                                                              <image id> <class name>
            images_box.txt                                    <image id> <xmin> <ymin> <xmax> <ymax>   (optional)
            images/1025794.jpg ...
    """
    truth_files: ClassVar[dict[str, str]] = {"box": BOX_FILE}

    root_candidates = ("", "data", "fgvc-aircraft-2013b/data")
    root_marker = "images"

    def __init__(
        self,
        root: str | Path,
        split: str,
        transform: Callable[[Image.Image], Any] | None = None,
        skip_bad_images: bool = False,
        level: str = "variant",
        use_val: bool = False,
        crop_banner: bool = True,
        draft_size: int | None = None,
    ) -> None:
        if level not in CLASS_FILES:
            raise DatasetError(
                f"{self.name}: unknown dataset.options.level={level!r}; choose one of {', '.join(CLASS_FILES)}."
            )
        check_use_val(split, use_val, dataset=self.name, train_note=" (= trainval), as in the paper")
        self.level, self.use_val, self.crop_banner = level, use_val, crop_banner
        super().__init__(root, split, transform, skip_bad_images, draft_size)

    def read(self) -> Annotations:
        classes_file = self.root / CLASS_FILES[self.level]
        classes = read_names(classes_file, dataset=self.name)
        index = {c: i for i, c in enumerate(classes)}
        file_split = "trainval" if self.split == "train" and not self.use_val else self.split
        list_file = self.root / f"images_{self.level}_{file_split}.txt"
        samples, image_ids = [], []
        for line, image_id, class_name in read_pairs(list_file, dataset=self.name):
            if class_name not in index:
                raise DatasetError(
                    f"{self.name}: {list_file} line {line}: class {class_name!r} is not listed in "
                    f"{classes_file}. The files are inconsistent; re-extract the archive."
                )
            samples.append((self.root / "images" / f"{image_id}.jpg", index[class_name]))
            image_ids.append(image_id)
        check_not_empty(samples, dataset=self.name, split=self.split, source=list_file)
        boxes = self._read_boxes(image_ids) if (self.root / BOX_FILE).is_file() else None
        return Annotations(samples, classes, boxes)

    def _read_boxes(self, image_ids: list[str]) -> list[Box]:
        """Each image's box from ``images_box.txt`` as ``(x, y, w, h)`` with 0-based, half-open pixels."""
        rows = read_numbers(self.root / BOX_FILE, image_ids, dataset=self.name, fields="<xmin> <ymin> <xmax> <ymax>")
        return [box_from_one_based(*row) for row in rows]

    def load_image(self, path: Path) -> Image.Image:
        """Load as RGB and cut the bottom copyright banner (before any transform).

        The banner is 20 px of the image on disk; a reduced-size decode (``draft_size``)
        shrinks it by the same factor, rounded up so no banner row survives.
        """
        img, (_, full_height) = decode_rgb(path, self.draft_size)
        if not self.crop_banner:
            return img
        if full_height <= BANNER_HEIGHT:
            raise BadImageError(path, f"Image is only {full_height} px tall, no room for the {BANNER_HEIGHT}-px banner")
        width, height = img.size
        return img.crop((0, 0, width, height - math.ceil(BANNER_HEIGHT * height / full_height)))
