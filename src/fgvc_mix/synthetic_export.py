"""Images to predict on: ``python -m fgvc_mix.synthetic_export <dir> [n] [dataset.key=value ...]``.

The demo's data is drawn in memory, so after ``python -m fgvc_mix.train`` there is no file
for ``predict`` to read. This writes the first ``n`` (default 16) images of the demo's test
split, the very images its test metrics were computed on, as PNG files named
``<index>_<class name>.png``, plus ``labels.csv`` (file, class name, label). Dataset
overrides are those of the training run (e.g. ``dataset.num_classes=8``), so the images match it.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from hydra.errors import ConfigCompositionException
from PIL import Image

from fgvc_mix.data.registry import build_dataset
from fgvc_mix.data.synthetic import SyntheticFGVC
from fgvc_mix.errors import UserError
from fgvc_mix.training.config import compose_config, one_line_user_errors

DEFAULT_COUNT = 16
LABELS_FILE = "labels.csv"
USAGE = "usage: python -m fgvc_mix.synthetic_export <dir> [n] [dataset.key=value ...]"


def demo_test_split(overrides: Sequence[str] = ()) -> SyntheticFGVC:
    """The test split exactly as ``python -m fgvc_mix.train [overrides]`` builds it (untransformed)."""
    try:
        dataset = compose_config(list(overrides), output_dir=".").dataset
    except ConfigCompositionException as error:  # a misspelt override: Hydra's two-line message, on one line
        raise UserError(" ".join(str(error).split())) from None
    if dataset.name != "synthetic":
        raise UserError(
            f"synthetic_export writes the synthetic demo's images; dataset={dataset.name}'s images are already files"
        )
    options = {"num_classes": dataset.num_classes, "image_size": dataset.image_size, **dataset.options}
    try:
        return build_dataset("synthetic", None, "test", **options)
    except ValueError as error:  # the dataset's own checks of these options
        raise UserError(str(error)) from None


def file_name(index: int, class_name: str) -> str:
    """``0003_ring-mark_striped-wing.png``: the class names hold ``/``, which cannot be in a file name."""
    return f"{index:04d}_{class_name.replace('/', '_')}.png"


def export_samples(directory: str | Path, count: int = DEFAULT_COUNT, overrides: Sequence[str] = ()) -> Path:
    """Write the first ``count`` test images and ``labels.csv`` into ``directory``; returns the CSV's path."""
    split = demo_test_split(overrides)
    if not 1 <= count <= len(split):
        raise UserError(
            f"n={count}: the test split has {len(split)} images (dataset.options.test_size); pick 1..{len(split)}"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(count):
        image, label = split[index]
        name = file_name(index, split.classes[label])
        pixels = (image.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
        Image.fromarray(pixels).save(directory / name)
        rows.append((name, split.classes[label], label))
    labels = directory / LABELS_FILE
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("file", "class_name", "label"))
        writer.writerows(rows)
    return labels


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):
        raise SystemExit(USAGE)
    directory, rest = args[0], args[1:]
    count = DEFAULT_COUNT
    if rest and "=" not in rest[0]:
        if not rest[0].isdigit():
            raise SystemExit(f"n must be a whole number, got {rest[0]!r}; {USAGE}")
        count, rest = int(rest[0]), rest[1:]
    with one_line_user_errors():
        labels = export_samples(directory, count, rest)
    print(f"Wrote {count} synthetic test images and {labels}")
    print(f"  python -m fgvc_mix.predict ckpt_path=<run dir>/checkpoints/last.ckpt images={directory}")


if __name__ == "__main__":
    main()
