"""Name → dataset class, so configs can say ``dataset=cub`` and code can build any of them."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .aircraft import FGVCAircraft
from .cars import StanfordCars
from .cub import CUB200
from .dogs import StanfordDogs
from .flowers102 import Flowers102
from .image_list import DatasetError, ImageListDataset
from .nabirds import NABirds

DATASETS: dict[str, type[ImageListDataset]] = {
    "cub": CUB200,
    "cars": StanfordCars,
    "aircraft": FGVCAircraft,
    "flowers102": Flowers102,
    "dogs": StanfordDogs,
    "nabirds": NABirds,
}


def build_dataset(
    name: str,
    root: str | Path,
    split: str,
    transform: Callable[[Any], Any] | None = None,
    **options: Any,
) -> ImageListDataset:
    """Build dataset ``name`` (a key of :data:`DATASETS`) for ``split``.

    ``options`` are the dataset-specific keyword arguments (``skip_bad_images``, Aircraft's
    ``level``, ...); an unknown name or option is reported with the valid choices.
    """
    if name not in DATASETS:
        raise DatasetError(f"Unknown dataset {name!r}; choose one of: {', '.join(DATASETS)} (dataset=<name>).")
    cls = DATASETS[name]
    accepted = [
        p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "root", "split", "transform")
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(
            f"{name}: unknown option(s) {', '.join(f'dataset.options.{o}' for o in unknown)}; "
            f"accepted: {', '.join(f'dataset.options.{o}' for o in accepted)}."
        )
    return cls(root, split, transform=transform, **options)
