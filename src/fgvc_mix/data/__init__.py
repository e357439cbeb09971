"""Datasets (synthetic and real fine-grained benchmarks), their transforms and the datamodule."""

from fgvc_mix.data.datamodule import FGVCDataModule
from fgvc_mix.data.image_list import BadImageError, DatasetError, ImageListDataset
from fgvc_mix.data.registry import DATASETS, build_dataset
from fgvc_mix.data.synthetic import SyntheticFGVC

__all__ = [
    "DATASETS",
    "BadImageError",
    "DatasetError",
    "FGVCDataModule",
    "ImageListDataset",
    "SyntheticFGVC",
    "build_dataset",
]
