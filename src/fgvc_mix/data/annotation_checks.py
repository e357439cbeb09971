"""Checks shared by the annotation parsers: the file is there, the split is not empty, ids are in range."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import DatasetError, LayoutError


def require_file(path: Path, *, dataset: str, hint: str = "") -> Path:
    """Return ``path`` if it is a file, else raise a :class:`LayoutError` naming it."""
    if not path.is_file():
        fix = hint or "Re-extract the official archive into dataset.root"
        raise LayoutError(f"{dataset}: annotation file {path} is missing. {fix}.")
    return path


def check_not_empty(samples: Sequence[Any], *, dataset: str, split: str, source: Path | str) -> None:
    """An empty split is always a broken annotation file, never something to train on."""
    if not samples:
        raise DatasetError(
            f"{dataset}: split {split!r} is empty according to {source}. "
            "The annotation file is probably truncated; re-extract the official archive."
        )


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
