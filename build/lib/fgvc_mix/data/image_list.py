"""Shared machinery for the fine-grained dataset readers.

Every real dataset (CUB, Cars, Aircraft, ...) parses its annotation files once into a
list of ``(image path, 0-based label)`` pairs and hands it to :class:`ImageListDataset`,
which loads images as 8-bit RGB whatever their mode and turns each problem a user can fix
(missing root, missing annotation file, unreadable image, bad label, empty split) into one
:class:`DatasetError` that names the file and says what to do. Errors about a missing root,
annotation file or layout end with the dataset's expected tree and download page, which
each dataset class declares once (``expected_layout``, ``homepage``).

The helpers below (root discovery, whitespace-separated id files, MATLAB struct fields,
label checks) are shared so that each dataset module only describes its own format.
"""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
BAD_IMAGE_HINT = (
    "Re-extract (or re-download) the dataset archive, or set dataset.options.skip_bad_images=true "
    "to drop unreadable images when the dataset is built."
)

#: A bounding box as ``(x, y, width, height)`` in pixels, origin at the top-left corner.
Box = tuple[float, float, float, float]


class DatasetError(ValueError):
    """A problem with the dataset on disk or its options; the message says how to fix it."""


class BadImageError(DatasetError):
    """An image listed by the annotations that cannot be read (missing, empty, corrupt)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{reason}: {path}. {BAD_IMAGE_HINT}")


# --------------------------------------------------------------------------- images


def to_rgb(img: Image.Image) -> Image.Image:
    """Return an 8-bit RGB copy of ``img``, whatever its mode.

    Alpha is dropped, not composited (as torchvision's ``ImageFolder`` loader does), so
    pixels match the reference implementations. Integer grayscale (``I;16*``, ``I``, as
    16-bit PNGs open) is scaled by 255/65535; Pillow's own conversion would clip every
    value above 255 to white. Float images (``F``) in [0, 1] are scaled by 255.
    """
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img).astype(np.float64)
        arr8 = np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8).convert("RGB")
    if mode == "F":
        arr = np.asarray(img).astype(np.float64)
        if arr.size and np.nanmax(arr) <= 1.0:
            arr = arr * 255.0
        arr8 = np.clip(np.rint(np.nan_to_num(arr)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8).convert("RGB")
    if mode in ("P", "PA") and ("transparency" in img.info or mode == "PA"):
        # Going through RGBA avoids Pillow's palette-transparency warning.
        img = img.convert("RGBA")
    return img.convert("RGB")


def load_rgb_image(path: Path, draft_size: int | None = None) -> Image.Image:
    """Fully decode the image at ``path`` as RGB; raise :class:`BadImageError` if unreadable."""
    return decode_rgb(path, draft_size)[0]


def decode_rgb(path: Path, draft_size: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode the image at ``path`` as RGB; return it and its size on disk (before ``draft``).

    The image is decoded in full (``load()``), so a truncated file is an error here rather
    than a silently grey-padded picture: ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left alone.
    With ``draft_size``, a JPEG decodes at the smallest 1/2, 1/4 or 1/8 scale whose sides
    stay >= ``draft_size`` (PIL's ``draft``), which is much faster for photos far larger
    than the resize target; other formats ignore it. The size on disk lets callers map
    full-resolution pixel coordinates (Aircraft's banner) onto the reduced image.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BadImageError(path, "Image listed in the annotations does not exist") from None
    except OSError as err:
        raise BadImageError(path, f"Cannot access image ({err.strerror or err})") from None
    if size == 0:
        raise BadImageError(path, "Image file is empty (0 bytes)")
    try:
        with Image.open(path) as img:
            full_size = img.size
            if draft_size is not None:
                img.draft("RGB", (draft_size, draft_size))
            img.load()
            return to_rgb(img), full_size
    except UnidentifiedImageError:
        raise BadImageError(path, "Not a readable image (unknown format or corrupt header)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadImageError(path, f"Cannot decode image, it is truncated or corrupt ({err})") from None


# --------------------------------------------------------------------------- dataset


class ImageListDataset(Dataset):
    """A list of ``(image path, 0-based label)`` pairs with robust RGB loading.

    ``__getitem__`` returns ``(transform(image), label)`` (the PIL image if no transform).
    With ``skip_bad_images=True`` every image is decoded once at construction and the
    unreadable ones are dropped and logged; otherwise a bad image raises when loaded.
    ``boxes``, when given, holds one ``(x, y, w, h)`` per sample and is kept aligned.
    ``draft_size`` turns on reduced-size JPEG decoding (see :func:`decode_rgb`); set it to
    the resize target, never below it, or images get upsampled.
    """

    #: Whether the dataset has an official validation split (else the datamodule carves one).
    has_val: ClassVar[bool] = False
    #: Short name used in messages (and the registry key for the real datasets).
    name: ClassVar[str] = "image_list"
    #: The on-disk tree a user must provide, shown by errors about a missing root or file.
    expected_layout: ClassVar[str] = ""
    #: Where to download the dataset, shown with ``expected_layout``.
    homepage: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _LAYOUTS[cls.name] = cls

    def __init__(
        self,
        samples: Iterable[tuple[str | Path, int]],
        classes: Sequence[str],
        transform: Callable[[Image.Image], Any] | None = None,
        skip_bad_images: bool = False,
        boxes: Sequence[Box] | None = None,
        draft_size: int | None = None,
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
        if self.boxes is not None and len(self.boxes) != len(self.samples):
            raise ValueError(f"got {len(self.boxes)} boxes for {len(self.samples)} samples")
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


#: Dataset classes by ``name``, filled by ``__init_subclass__`` so helpers that only get the
#: name in ``dataset=`` can append that dataset's tree and download page.
_LAYOUTS: dict[str, type[ImageListDataset]] = {}


def layout_help(dataset: str) -> str:
    """The expected tree and download page of ``dataset`` as lines to append to an error ("" if unknown)."""
    cls = _LAYOUTS.get(dataset)
    if cls is None:
        return ""
    text = ""
    if cls.expected_layout:
        body = textwrap.indent(textwrap.dedent(cls.expected_layout).strip("\n"), "    ")
        text += f"\nExpected layout (set dataset.root=<its top folder or the parent>):\n{body}"
    if cls.homepage:
        text += f"\nDownload: {cls.homepage}"
    return text


# --------------------------------------------------------------------------- roots and splits


def check_split(split: str, *, dataset: str, has_val: bool) -> None:
    """Reject unknown splits, and ``val`` for datasets without an official one."""
    if split not in SPLITS:
        raise DatasetError(f"{dataset}: unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    if split == "val" and not has_val:
        raise DatasetError(
            f"{dataset} has no official validation split; ask for 'train' or 'test' "
            "(the datamodule carves its own validation split from train)."
        )


def check_root(root: str | Path, *, dataset: str, expected: str) -> Path:
    """Return ``root`` as a Path if it is an existing folder, else say how to set it."""
    path = Path(root).expanduser()
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise DatasetError(
            f"{dataset}: dataset root {path} {what}. Set dataset.root=<{expected}>.{layout_help(dataset)}"
        )
    return path


def find_root(root: str | Path, *, dataset: str, candidates: Sequence[str], marker: str) -> Path:
    """Return the first ``root/<candidate>`` holding ``marker`` (a file or folder).

    Lets users point ``dataset.root`` at the extracted folder or at its parent.
    """
    root = check_root(root, dataset=dataset, expected=f"the folder holding {marker}")
    tried = [root / c if c else root for c in candidates]
    for base in tried:
        if (base / marker).exists():
            return base
    looked = ", ".join(str(base / marker) for base in tried)
    raise DatasetError(
        f"{dataset}: cannot find {marker} under dataset root {root} (looked for {looked}). "
        f"Set dataset.root=<folder holding {marker}> or extract the official archive there.{layout_help(dataset)}"
    )


def require_file(path: Path, *, dataset: str, hint: str = "") -> Path:
    """Return ``path`` if it is a file, else raise a :class:`DatasetError` naming it."""
    if not path.is_file():
        fix = hint or "Re-extract the official archive into dataset.root"
        raise DatasetError(f"{dataset}: annotation file {path} is missing. {fix}.{layout_help(dataset)}")
    return path


def check_not_empty(samples: Sequence[Any], *, dataset: str, split: str, source: Path | str) -> None:
    """An empty split is always a broken annotation file, never something to train on."""
    if not samples:
        raise DatasetError(
            f"{dataset}: split {split!r} is empty according to {source}. "
            "The annotation file is probably truncated; re-extract the official archive."
        )


# --------------------------------------------------------------------------- text annotation files


def read_pairs(path: Path, *, dataset: str) -> list[tuple[int, str, str]]:
    """Read ``<key> <value>`` lines as ``(line number, key, value)``, splitting each line once.

    Values may contain spaces or slashes (Aircraft's ``Cessna 172``, ``F/A-18``). Blank
    lines are skipped; a line with a key but no value is an error naming the line.
    """
    rows = []
    for number, line in enumerate(_read_text(path, dataset=dataset).splitlines(), start=1):
        parts = line.strip().split(maxsplit=1)
        if not parts:
            continue
        if len(parts) < 2:
            raise DatasetError(f"{dataset}: {path} line {number}: expected '<id> <value>', got {line.strip()!r}.")
        rows.append((number, parts[0], parts[1].strip()))
    return rows


def read_table(path: Path, *, dataset: str) -> dict[str, tuple[int, str]]:
    """Read an ``<id> <value>`` file as ``{id: (line number, value)}``; duplicate ids are errors."""
    table: dict[str, tuple[int, str]] = {}
    for number, key, value in read_pairs(path, dataset=dataset):
        if key in table:
            raise DatasetError(f"{dataset}: {path} line {number}: id {key!r} already appeared on line {table[key][0]}.")
        table[key] = (number, value)
    return table


def read_names(path: Path, *, dataset: str) -> list[str]:
    """Read one name per non-blank line (names may contain spaces)."""
    return [line.strip() for line in _read_text(path, dataset=dataset).splitlines() if line.strip()]


def _read_text(path: Path, *, dataset: str) -> str:
    require_file(path, dataset=dataset)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return path.read_text(encoding="latin-1")


def parse_int(value: Any, *, dataset: str, source: Path, where: str) -> int:
    """Parse an integer from text or a (MATLAB double) number, naming the place if it is not one."""
    try:
        number = float(value) if not isinstance(value, str) else int(value)
        if number != int(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise DatasetError(f"{dataset}: {source} {where}: expected an integer, got {value!r}.") from None


def check_class_id(class_id: int, *, num_classes: int, first: int, dataset: str, source: Path, where: str) -> int:
    """Check ``first <= class_id < first + num_classes`` and return the 0-based label."""
    if not first <= class_id < first + num_classes:
        raise DatasetError(
            f"{dataset}: {source} {where}: class id {class_id} is out of range "
            f"{first}..{first + num_classes - 1} ({num_classes} classes). "
            "The annotation file is corrupt or from another dataset version; re-extract it."
        )
    return class_id - first


# --------------------------------------------------------------------------- MATLAB files


def load_mat(path: Path, *, dataset: str, hint: str = "") -> dict[str, Any]:
    """Load a ``.mat`` file without squeezing, so one-record struct arrays stay arrays."""
    from scipy.io import loadmat  # scipy is only needed by the .mat datasets

    require_file(path, dataset=dataset, hint=hint)
    try:
        return loadmat(str(path), squeeze_me=False)
    except Exception as err:  # scipy raises ValueError, TypeError, OSError, ... on bad files
        raise DatasetError(
            f"{dataset}: cannot read MATLAB file {path} ({err}). Re-download it; it looks corrupt."
        ) from None


def mat_field(mat: dict[str, Any], key: str, *, dataset: str, source: Path) -> np.ndarray:
    """Return variable ``key`` of a loaded ``.mat`` file as a flat array (any shape → 1-D)."""
    if key not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "nothing"
        raise DatasetError(
            f"{dataset}: {source} has no variable {key!r} (found: {found}). "
            "It is not the expected annotation file; re-download it."
        )
    return np.atleast_1d(np.asarray(mat[key])).ravel()


def mat_scalar(value: Any) -> Any:
    """Unwrap MATLAB's 1x1 arrays: ``array([[3]])`` → 3, ``array(['a.jpg'])`` → ``'a.jpg'``."""
    arr = np.asarray(value)
    while arr.dtype == object and arr.size == 1:
        arr = np.asarray(arr.ravel()[0])
    if arr.size == 0:
        return "" if arr.dtype.kind in "US" else None
    first = arr.ravel()[0]
    item = first.item() if isinstance(first, np.generic) else first
    return item.strip() if isinstance(item, str) else item


def mat_strings(mat: dict[str, Any], key: str, *, dataset: str, source: Path) -> list[str]:
    """Read a cell array of strings (e.g. ``class_names``) as a list."""
    return [str(mat_scalar(v)) for v in mat_field(mat, key, dataset=dataset, source=source)]


def mat_records(
    mat: dict[str, Any], key: str, fields: Sequence[str], *, dataset: str, source: Path
) -> list[dict[str, Any]]:
    """Read a struct array as one dict of scalars per record, checking the fields exist."""
    arr = mat_field(mat, key, dataset=dataset, source=source)
    names = arr.dtype.names or ()
    missing = [f for f in fields if f not in names]
    if missing:
        raise DatasetError(
            f"{dataset}: {source} variable {key!r} lacks field(s) {', '.join(missing)} "
            f"(has: {', '.join(names) or 'none'}). It is not the expected annotation file; re-download it."
        )
    return [{f: mat_scalar(rec[f]) for f in fields} for rec in arr]
