"""Name → dataset, so configs can say ``dataset=cub`` and code can build any split of any of them."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from .aircraft import FGVCAircraft
from .cars import StanfordCars
from .cub import CUB200
from .dogs import StanfordDogs
from .errors import DatasetError
from .flowers102 import Flowers102
from .folder import DEFAULT_SHARES, ImageFolderData
from .nabirds import NABirds
from .reader import SPLITS, DatasetReader
from .synthetic import SyntheticFGVC

Transform = Callable[[Any], Any] | None


@dataclass(frozen=True)
class SplitRequest:
    """One split as the ``dataset`` config asks for it; each builder takes what it needs."""

    split: str
    root: Path | None = None
    transform: Transform = None
    num_classes: int | None = None  # generated datasets are drawn with it; readers find theirs in the files
    image_size: int | None = None  # likewise; the readers' images are resized by the transform


#: ``build(request, options)``: the split ``request`` asks for, with its ``dataset.options``.
Builder = Callable[[SplitRequest, dict[str, Any]], Dataset]


@dataclass(frozen=True)
class DatasetEntry:
    """One registered dataset: how to build a split, and what a config may set for it."""

    build: Builder
    options: tuple[str, ...]  # the accepted dataset.options
    has_val: bool  # an official validation split exists
    on_disk: bool = True  # read from dataset.root (else generated in memory)


def reader(cls: type[DatasetReader]) -> DatasetEntry:
    """The entry of a dataset read from disk; its ``dataset.options`` are the reader's parameters."""

    def build(request: SplitRequest, options: dict[str, Any]) -> Dataset:
        return cls(request.root, request.split, request.transform, **options)

    return DatasetEntry(build, tuple(cls.option_names()), cls.has_val)


def _synthetic(request: SplitRequest, options: dict[str, Any]) -> Dataset:
    """The synthetic birds: ``<split>_size`` images of the split, at the config's classes and image size."""
    sizes = {s: options.pop(f"{s}_size") for s in SPLITS}
    return SyntheticFGVC(
        request.split,
        sizes[request.split],
        request.num_classes,
        request.image_size,
        transform=request.transform,
        **options,
    )


def _folder(request: SplitRequest, options: dict[str, Any]) -> Dataset:
    """A user's own images; ``dataset.options.split`` (train/val/test shares) is the reader's ``shares``."""
    shares = options.pop("split", DEFAULT_SHARES)
    return ImageFolderData(request.root, request.split, request.transform, shares, **options)


_SYNTHETIC_OPTIONS = tuple(f"{s}_size" for s in SPLITS) + tuple(
    p
    for p in inspect.signature(SyntheticFGVC.__init__).parameters
    if p not in ("self", "split", "num_samples", "num_classes", "image_size", "transform")
)

DATASETS: dict[str, DatasetEntry] = {
    "cub": reader(CUB200),
    "cars": reader(StanfordCars),
    "aircraft": reader(FGVCAircraft),
    "flowers102": reader(Flowers102),
    "dogs": reader(StanfordDogs),
    "nabirds": reader(NABirds),
    "folder": DatasetEntry(
        _folder, ("split", *(o for o in ImageFolderData.option_names() if o != "shares")), ImageFolderData.has_val
    ),
    "synthetic": DatasetEntry(_synthetic, _SYNTHETIC_OPTIONS, has_val=True, on_disk=False),
}


def dataset_entry(name: str) -> DatasetEntry:
    """The entry of dataset ``name``; an unknown name is reported with the valid choices."""
    if name not in DATASETS:
        raise DatasetError(f"Unknown dataset {name!r}; choose one of: {', '.join(DATASETS)} (dataset=<name>).")
    return DATASETS[name]


def build_dataset(
    name: str,
    root: str | Path | None,
    split: str,
    /,
    transform: Transform = None,
    *,
    num_classes: int | None = None,
    image_size: int | None = None,
    **options: Any,
) -> Dataset:
    """Build split ``split`` of dataset ``name`` (a key of :data:`DATASETS`).

    ``options`` are the dataset-specific ``dataset.options`` (``skip_bad_images``, Aircraft's
    ``level``, the synthetic data's ``train_size``, the folder data's ``split`` shares: hence
    ``name``, ``root`` and ``split`` are positional-only); an unknown name or option is
    reported with the valid choices. ``num_classes`` and ``image_size`` are what generated
    datasets are drawn with; the readers ignore them.
    """
    entry = dataset_entry(name)
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        raise DatasetError(
            f"{name}: unknown option(s) {', '.join(f'dataset.options.{o}' for o in unknown)}; "
            f"accepted: {', '.join(f'dataset.options.{o}' for o in entry.options)}."
        )
    request = SplitRequest(split, None if root is None else Path(root), transform, num_classes, image_size)
    return entry.build(request, dict(options))
