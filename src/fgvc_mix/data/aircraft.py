"""FGVC-Aircraft 2013b (Maji, Rahtu, Kannala, Blaschko & Vedaldi, Fine-Grained Visual
Classification of Aircraft, arXiv:1306.5151, 2013).

10,000 images at three levels: 100 variants, 70 families, 30 manufacturers. Splits:
3,334 train / 3,333 val (6,667 trainval) / 3,333 test. Layout of ``fgvc-aircraft-2013b.tar.gz``::

    fgvc-aircraft-2013b/data/
        variants.txt  families.txt  manufacturers.txt          one class name per line
        images_{variant,family,manufacturer}_{train,val,trainval,test}.txt
                                                               "<image id> <class name>"
        images/<image id>.jpg

Class names contain spaces and slashes (``1042824 Cessna 172``, ``0062765 F/A-18``), so
each line is split once. Every image carries a 20-pixel copyright banner at the bottom,
which the dataset's README asks users to remove; it is cropped before the transform.
``dataset.root`` may be ``fgvc-aircraft-2013b/``, its ``data/`` folder, or their parent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from .image_list import (
    BadImageError,
    DatasetError,
    ImageListDataset,
    check_not_empty,
    check_split,
    find_root,
    load_rgb_image,
    read_names,
    read_pairs,
)

BANNER_HEIGHT = 20
CLASS_FILES = {"variant": "variants.txt", "family": "families.txt", "manufacturer": "manufacturers.txt"}


class FGVCAircraft(ImageListDataset):
    """FGVC-Aircraft at ``level`` variant (100 classes), family (70) or manufacturer (30).

    ``use_val=False`` (the paper's protocol): ``train`` reads ``trainval`` and ``val`` is
    refused, since its images are in train. ``use_val=True``: ``train`` and ``val`` are the
    official halves.
    """

    name = "aircraft"
    has_val = True

    def __init__(
        self,
        root: str | Path,
        split: str,
        transform: Callable[[Image.Image], Any] | None = None,
        skip_bad_images: bool = False,
        level: str = "variant",
        use_val: bool = False,
        crop_banner: bool = True,
    ) -> None:
        check_split(split, dataset=self.name, has_val=self.has_val)
        if level not in CLASS_FILES:
            raise DatasetError(f"{self.name}: unknown dataset.level={level!r}; choose one of {', '.join(CLASS_FILES)}.")
        if split == "val" and not use_val:
            raise DatasetError(
                f"{self.name}: split 'val' needs dataset.use_val=true; with use_val=false the "
                "official val images are part of train (= trainval), as in the paper."
            )
        self.root = find_root(
            root, dataset=self.name, candidates=["", "data", "fgvc-aircraft-2013b/data"], marker="images"
        )
        self.split, self.level, self.use_val, self.crop_banner = split, level, use_val, crop_banner

        classes = read_names(self.root / CLASS_FILES[level], dataset=self.name)
        index = {c: i for i, c in enumerate(classes)}
        file_split = "trainval" if split == "train" and not use_val else split
        list_file = self.root / f"images_{level}_{file_split}.txt"
        samples = []
        for line, image_id, class_name in read_pairs(list_file, dataset=self.name):
            if class_name not in index:
                raise DatasetError(
                    f"{self.name}: {list_file} line {line}: class {class_name!r} is not listed in "
                    f"{self.root / CLASS_FILES[level]}. The files are inconsistent; re-extract the archive."
                )
            samples.append((self.root / "images" / f"{image_id}.jpg", index[class_name]))
        check_not_empty(samples, dataset=self.name, split=split, source=list_file)
        super().__init__(samples, classes, transform, skip_bad_images)

    def load_image(self, path: Path) -> Image.Image:
        """Load as RGB and cut the bottom copyright banner (before any transform)."""
        img = load_rgb_image(path)
        if not self.crop_banner:
            return img
        width, height = img.size
        if height <= BANNER_HEIGHT:
            raise BadImageError(path, f"Image is only {height} px tall, no room for the {BANNER_HEIGHT}-px banner")
        return img.crop((0, 0, width, height - BANNER_HEIGHT))
