"""Writers of tiny image files and dataset trees in the official on-disk formats, shared by the data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def image(path: Path, size: tuple[int, int] = (8, 8), color: tuple[int, int, int] = (120, 60, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def lines(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{row}\n" for row in rows))


def write_jpeg(path: Path, seed: int = 0, size: int = 48) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path, quality=90)
    return path


def write_cub_style(base: Path, images: list[tuple[str, str, str, int]], classes: list[tuple[str, str]]) -> None:
    """``images``: (image id, relative path, class id, is_train)."""
    lines(base / "images.txt", [f"{i} {p}" for i, p, _, _ in images])
    lines(base / "image_class_labels.txt", [f"{i} {c}" for i, _, c, _ in images])
    lines(base / "train_test_split.txt", [f"{i} {t}" for i, _, _, t in images])
    lines(base / "bounding_boxes.txt", [f"{i} {n}.0 2.0 3.5 4.0" for n, (i, *_) in enumerate(images)])
    lines(base / "classes.txt", [f"{c} {name}" for c, name in classes])
    for _, rel, _, _ in images:
        image(base / "images" / rel)
