"""The errors a user can fix: each message names the file or option and says what to do."""

from __future__ import annotations

from pathlib import Path

from fgvc_mix.errors import UserError

BAD_IMAGE_HINT = (
    "Re-extract (or re-download) the dataset archive, or set dataset.options.skip_bad_images=true "
    "to drop unreadable images when the dataset is built."
)


class DatasetError(UserError):
    """A problem with the dataset on disk or its options; the message says how to fix it."""


class LayoutError(DatasetError):
    """A folder or file the dataset needs is not where its layout puts it.

    The reader appends its expected tree and download page to the message
    (:meth:`fgvc_mix.data.reader.DatasetReader.layout_help`), so the helpers that raise it
    need not know which dataset they serve.
    """


class BadImageError(DatasetError):
    """An image listed by the annotations that cannot be read (missing, empty, corrupt)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{reason}: {path}. {BAD_IMAGE_HINT}")
