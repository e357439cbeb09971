"""Image decoding: any file a dataset lists becomes an 8-bit RGB image, or one :class:`BadImageError`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import BadImageError

#: File suffixes taken for images when a folder is listed (``dataset=folder``, ``predict images=<folder>``).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


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
