"""Datasets (synthetic and real fine-grained benchmarks), their transforms and the datamodule.

``FGVCDataModule`` is imported on first use, so the dataset readers (and
``python -m fgvc_mix.verify``) load without PyTorch Lightning, which takes seconds.
"""

from typing import Any

from fgvc_mix.data.errors import BadImageError, DatasetError
from fgvc_mix.data.image_list import ImageListDataset
from fgvc_mix.data.reader import DatasetReader
from fgvc_mix.data.registry import DATASETS, build_dataset
from fgvc_mix.data.synthetic import SyntheticFGVC

__all__ = [
    "DATASETS",
    "BadImageError",
    "DatasetError",
    "DatasetReader",
    "FGVCDataModule",
    "ImageListDataset",
    "SyntheticFGVC",
    "build_dataset",
]


def __getattr__(name: str) -> Any:
    if name == "FGVCDataModule":
        from fgvc_mix.data.datamodule import FGVCDataModule

        return FGVCDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
