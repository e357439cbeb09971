"""The truth protocol (:mod:`fgvc_mix.data.truth`) for the real datasets: their boxes and keypoints as masks.

Every reader inherits it; what a reader has is what its parser filled in (``boxes``,
``parts``) or what it overrides (Stanford Dogs reads each image's boxes from its XML). A
kind the release lacks is refused with the file that would enable it.
"""

from __future__ import annotations

from typing import ClassVar

from PIL import Image
from torchvision import tv_tensors

from .errors import DatasetError
from .image_list import Box, ImageListDataset
from .truth import TRUTH_KINDS, box_units, disc_units, part_radius

#: Where the releases that have each kind of truth keep it, for a dataset that has none.
ANNOTATED = {
    "parts": "keypoints come with cub and nabirds: parts/part_locs.txt",
    "box": "boxes come with cub, nabirds (bounding_boxes.txt), cars, aircraft (images_box.txt), dogs (Annotation/)",
}


class ReaderTruth(ImageListDataset):
    """``truth_kinds`` / ``sample_with_truth`` from the parsed ``boxes`` and ``parts``."""

    #: For each truth kind, the annotation file (under the release's root) that enables it.
    truth_files: ClassVar[dict[str, str]] = {}

    @property
    def has_boxes(self) -> bool:
        """Whether every image has object boxes (:meth:`object_boxes`)."""
        return self.boxes is not None

    def object_boxes(self, index: int) -> list[Box]:
        """The object boxes of image ``index``, ``(x, y, w, h)`` in the pixels of the image on disk."""
        assert self.boxes is not None
        return [self.boxes[index]]

    def boxed_images(self) -> int:
        """How many images of the split have an object box."""
        return len(self) if self.boxes is not None else 0

    def truth_coverage(self) -> dict[str, int]:
        """Images with an object box, with part annotations, and with at least one visible part."""
        parts = self.parts or []
        return {
            "boxes": self.boxed_images(),
            "parts": sum(p is not None for p in parts),
            "visible parts": sum(bool(p) for p in parts),
        }

    def truth_kinds(self) -> tuple[str, ...]:
        """The kinds of truth this split has: ``parts`` needs keypoints and boxes, ``box`` boxes."""
        has = {"parts": self.parts is not None and self.has_boxes, "box": self.has_boxes}
        return tuple(kind for kind in TRUTH_KINDS if has[kind])

    def check_truth(self, kind: str) -> None:
        """Refuse a kind this release lacks, naming the file that would enable it."""
        if kind not in TRUTH_KINDS:
            raise DatasetError(f"truth={kind!r} is not known; choose one of {', '.join(TRUTH_KINDS)}.")
        if kind in self.truth_kinds():
            return
        root = getattr(self, "root", None)
        where = f" under {root}" if root is not None else ""
        needed = self.truth_files.get(kind)
        fix = f"it needs {needed}{where}" if needed else f"its files have none; {ANNOTATED[kind]}"
        have = ", ".join(self.truth_kinds()) or "none"
        raise DatasetError(f"{self.name}: no truth={kind} here: {fix} (truth kinds available: {have}).")

    def sample_with_truth(self, index: int, kind: str) -> tuple[Image.Image, int, tv_tensors.Mask]:
        """``(image, label, units)``, untransformed; ``units`` is a (K, H, W) mask (:mod:`~fgvc_mix.data.truth`).

        Annotations are in the pixels on disk; a reduced-size decode (``draft_size``) or
        Aircraft's banner crop keeps the top-left origin, so they scale by the decoded width.
        """
        self.check_truth(kind)
        path, label = self.samples[index]
        image = self.load_image(path)
        scale = 1.0
        if self.draft_size is not None:
            with Image.open(path) as on_disk:
                scale = image.width / on_disk.width
        boxes = self.object_boxes(index)
        if kind == "box":
            units = box_units(image.size, boxes, scale)
        else:
            assert self.parts is not None
            units = disc_units(image.size, self.parts[index] or [], part_radius(boxes[0]), scale)
        return image, label, tv_tensors.Mask(units)
