"""MATLAB annotation files (Cars, Dogs, Flowers): variables, cell arrays of strings and struct arrays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .annotation_checks import require_file
from .errors import DatasetError


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
