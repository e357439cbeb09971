"""Whitespace-separated text annotation files (CUB, NABirds, Aircraft): ``<id> <value>`` lines and name lists."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .annotation_checks import require_file
from .errors import DatasetError


def read_pairs(path: Path, *, dataset: str) -> list[tuple[int, str, str]]:
    """Read ``<key> <value>`` lines as ``(line number, key, value)``, splitting each line once.

    Values may contain spaces or slashes (Aircraft's ``Cessna 172``, ``F/A-18``). Blank
    lines are skipped; a line with a key but no value is an error naming the line.
    """
    rows = []
    for number, line in enumerate(read_text(path, dataset=dataset).splitlines(), start=1):
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


def read_numbers(path: Path, image_ids: Sequence[str], *, dataset: str, fields: str) -> list[list[float]]:
    """The numbers on the line of each of ``image_ids`` in an ``<id> <numbers...>`` file (bounding boxes).

    ``fields`` names the numbers (``"<x> <y> <width> <height>"``); an id without a line, or a
    line without exactly those numbers, is an error naming the file and the id or line.
    """
    table = read_table(path, dataset=dataset)
    expected = len(fields.split())
    rows = []
    for image_id in image_ids:
        if image_id not in table:
            raise DatasetError(f"{dataset}: image id {image_id} has no line in {path}.")
        line, values = table[image_id]
        try:
            numbers = [float(v) for v in values.split()]
        except ValueError:
            numbers = []
        if len(numbers) != expected:
            raise DatasetError(f"{dataset}: {path} line {line}: expected '<id> {fields}'.")
        rows.append(numbers)
    return rows


def read_names(path: Path, *, dataset: str) -> list[str]:
    """Read one name per non-blank line (names may contain spaces)."""
    return [line.strip() for line in read_text(path, dataset=dataset).splitlines() if line.strip()]


def read_text(path: Path, *, dataset: str) -> str:
    """The file's text as UTF-8, or Latin-1 where it is not (older releases)."""
    require_file(path, dataset=dataset)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return path.read_text(encoding="latin-1")
