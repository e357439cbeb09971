"""The dataset class every real dataset reader ends in: a list of ``(image path, 0-based label)`` pairs.

Images load as 8-bit RGB whatever their mode (:mod:`fgvc_mix.data.decoding`); an unreadable
one is a :class:`BadImageError` when it is loaded, or, with ``skip_bad_images``, is dropped
and logged when the dataset is built.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image
from torch.utils.data import Dataset

from .decoding import load_rgb_image
from .errors import BAD_IMAGE_HINT, BadImageError, DatasetError

log = logging.getLogger(__name__)

#: A bounding box as ``(x, y, width, height)`` in pixels, origin at the top-left corner.
Box = tuple[float, float, float, float]
#: A keypoint as ``(x, y)`` in pixels.
Point = tuple[float, float]


def box_from_one_based(xmin: float, ymin: float, xmax: float, ymax: float) -> Box:
    """A :data:`Box` from corners whose top-left pixel is (1, 1), both ends included (Aircraft, Pascal VOC)."""
    return (xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1)


class ImageListDataset(Dataset):
    """A list of ``(image path, 0-based label)`` pairs with robust RGB loading.

    ``__getitem__`` returns ``(transform(image), label)`` (the PIL image if no transform).
    With ``skip_bad_images=True`` every image is decoded once at construction and the
    unreadable ones are dropped and logged; otherwise a bad image raises when loaded.
    ``boxes``, when given, holds one ``(x, y, w, h)`` per sample and ``parts`` the visible
    keypoints of each sample; both are kept aligned.
    ``draft_size`` turns on reduced-size JPEG decoding (see :func:`~fgvc_mix.data.decoding.decode_rgb`);
    set it to the resize target, never below it, or images get upsampled.
    """

    #: Short name used in messages (and the registry key for the real datasets).
    name: ClassVar[str] = "image_list"

    def __init__(
        self,
        samples: Iterable[tuple[str | Path, int]],
        classes: Sequence[str],
        transform: Callable[[Image.Image], Any] | None = None,
        skip_bad_images: bool = False,
        boxes: Sequence[Box] | None = None,
        draft_size: int | None = None,
        parts: Sequence[list[Point] | None] | None = None,
    ) -> None:
        if draft_size is not None and (type(draft_size) is not int or draft_size < 1):
            raise DatasetError(
                f"{self.name}: dataset.options.draft_size must be a positive integer (the resize target) "
                f"or null, got {draft_size!r}."
            )
        self.draft_size = draft_size
        self.samples: list[tuple[Path, int]] = [(Path(p), int(y)) for p, y in samples]
        self.classes: list[str] = list(classes)
        self.transform = transform
        self.skip_bad_images = skip_bad_images
        self.boxes: list[Box] | None = list(boxes) if boxes is not None else None
        self.parts: list[list[Point] | None] | None = list(parts) if parts is not None else None
        for what, values in (("boxes", self.boxes), ("parts", self.parts)):
            if values is not None and len(values) != len(self.samples):
                raise ValueError(f"got {len(values)} {what} for {len(self.samples)} samples")
        if skip_bad_images:
            self.verify_images()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def load_image(self, path: Path) -> Image.Image:
        """Load one image as RGB; datasets override this for fixed crops (Aircraft)."""
        return load_rgb_image(path, self.draft_size)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        img = self.load_image(path)
        if self.transform is not None:
            img = self.transform(img)
        return img, label

    def find_unreadable(
        self, num_workers: int | None = None, on_image: Callable[[], None] | None = None
    ) -> list[tuple[int, str]]:
        """Decode every image once with :meth:`load_image`; return ``(index, reason)`` of the bad ones.

        Decoding fully is what catches truncated files (``Image.verify`` does not). Pillow
        releases the GIL while decoding, so a few threads make this pass faster.
        ``on_image`` is called once per image scanned (a progress bar's advance).
        """

        def problem(path: Path) -> str | None:
            try:
                self.load_image(path)
            except BadImageError as err:
                return err.reason
            return None

        workers = num_workers or min(8, os.cpu_count() or 1)
        bad = []
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for index, reason in enumerate(pool.map(problem, [path for path, _ in self.samples])):
                if reason is not None:
                    bad.append((index, reason))
                if on_image is not None:
                    on_image()
        return bad

    def verify_images(self, num_workers: int | None = None) -> list[Path]:
        """Drop the unreadable images (logged, see :meth:`find_unreadable`); return their paths."""
        bad = dict(self.find_unreadable(num_workers))
        skipped = [self.samples[index][0] for index in bad]
        for path, reason in zip(skipped, bad.values(), strict=True):
            log.warning("Skipping unreadable image %s (%s)", path, reason)
        if skipped:
            total = len(self.samples)
            keep = [i for i in range(total) if i not in bad]
            self.samples = [self.samples[i] for i in keep]
            if self.boxes is not None:
                self.boxes = [self.boxes[i] for i in keep]
            if self.parts is not None:
                self.parts = [self.parts[i] for i in keep]
            log.warning(
                "%s: skipped %d of %d images that could not be read (dataset.options.skip_bad_images=true)",
                self.name,
                len(skipped),
                total,
            )
            if not self.samples:
                raise DatasetError(
                    f"{self.name}: all {total} images of this split are unreadable "
                    f"(first: {skipped[0]}). {BAD_IMAGE_HINT.split(', or')[0]}."
                )
        return skipped

    def __repr__(self) -> str:
        return f"{type(self).__name__}(samples={len(self)}, classes={self.num_classes})"
