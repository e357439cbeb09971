"""Opt-in JPEG decoding on the training device (``dataset.decode=gpu``).

Why: a CPU loader worker decodes, resizes and crops far fewer CUB photos per second with PIL than
a GPU trains on (docs/datasets.md, ``dataset.decode``: images/s per loader worker), so one GPU needs
many cores of JPEG decoding. With ``decode=gpu`` a worker only reads a file's bytes and its
header (the image size) and draws the random crop and flip as plain numbers; the training
device then decodes the whole batch in one ``torchvision.io.decode_jpeg(list, device=...)``
call (nvjpeg on CUDA; rare CMYK JPEGs on the host, see :func:`decode_images`) and runs the
pipeline of :mod:`fgvc_mix.data.transforms` with the same torchvision functions: resize
(``square``/``shorter``, bilinear, antialiased, on uint8), crop, flip, scale to [0, 1],
normalise. The crop and flip are drawn with the same torch random calls, in the same order,
as ``train_transform``, so one torch seed gives one crop in both paths, and no host-device
synchronisation is needed (the numbers stay on the host).

Pixels against the CPU path (measured on CPU, the device being the CPU; tests/test_device_decode.py):
identical (0 grey levels, mean and max) for RGB, grey and CMYK JPEGs, both resize modes, train
and eval: Pillow 13 (libjpeg-turbo 3.2) and torchvision 0.29 (its bundled libjpeg.so.8) decode
to the same pixels, and the resize is the same function. On CUDA two things differ, neither
measured on a GPU here: nvjpeg's decode, and the resize, which torchvision runs on a float copy
and rounds back (the CPU has a native uint8 kernel); that resize alone, emulated on the CPU,
differs by a fraction of a grey level (the figures: docs/datasets.md, "Same pixels?").
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as F

from .aircraft import BANNER_HEIGHT, FGVCAircraft
from .errors import BadImageError, DatasetError
from .image_list import ImageListDataset

DECODE_MODES = ("cpu", "gpu")
JPEG_MAGIC = b"\xff\xd8\xff"
GPU_DECODE_FIX = "set dataset.decode=cpu (decodes any format in the loader workers) or convert the images to JPEG"


class EncodedBatch(NamedTuple):
    """A batch as the loader workers leave it with ``decode=gpu``: bytes plus where to crop."""

    data: list[Tensor]  # one 1-D uint8 CPU tensor per image: the JPEG file as on disk
    layout: Tensor  # (B, 9) int64, one row of LAYOUT per image
    paths: list[str]  # named in the error if the device cannot decode the batch


#: The columns of :attr:`EncodedBatch.layout`: the region of the decoded image to keep (Aircraft's
#: banner is cut), the size it is resized to, the crop's top-left corner and side, the flip, and
#: whether the host decodes the image (CMYK, which libjpeg converts to RGB as the CPU path does).
LAYOUT = ("kept_height", "kept_width", "height", "width", "top", "left", "size", "flip", "on_host")
HOST = torch.device("cpu")


def check_decode(decode: str, *, on_disk: bool, name: str) -> None:
    """Refuse an unknown ``dataset.decode``, and ``gpu`` for data generated in memory."""
    if decode not in DECODE_MODES:
        raise DatasetError(f"dataset.decode={decode!r} is not known; choose one of {', '.join(DECODE_MODES)}")
    if decode == "gpu" and not on_disk:
        raise DatasetError(
            f"dataset.decode=gpu decodes JPEG files, but dataset={name} is generated in memory: set dataset.decode=cpu"
        )


def resized_size(height: int, width: int, resize_size: int, resize: str) -> tuple[int, int]:
    """(height, width) after the ``resize`` step of :func:`~fgvc_mix.data.transforms.resize_transform`."""
    if resize == "square":
        return resize_size, resize_size
    short, long = min(height, width), max(height, width)
    long = int(resize_size * long / short)  # torchvision's rounding
    return (long, resize_size) if height > width else (resize_size, long)


def draw_layout(kept: tuple[int, int], size: int, resize_size: int, resize: str, train: bool) -> list[int]:
    """One LAYOUT row; ``train`` draws crop and flip with the torch calls of RandomCrop + RandomHorizontalFlip."""
    height, width = resized_size(*kept, resize_size, resize)
    if train:
        top = int(torch.randint(0, height - size + 1, size=())) if height > size else 0
        left = int(torch.randint(0, width - size + 1, size=())) if width > size else 0
        flip = int(torch.rand(1) < 0.5)
    else:  # CenterCrop's anchor, Python's round included
        top, left, flip = round((height - size) / 2.0), round((width - size) / 2.0), 0
    return [*kept, height, width, top, left, size, flip]


def not_jpeg_error(paths: Sequence[Path], total: int, dataset: str) -> DatasetError:
    return DatasetError(
        f"{dataset}: dataset.decode=gpu decodes JPEG only, but {len(paths)} of {total} images are not JPEG "
        f"(first: {paths[0]}); {GPU_DECODE_FIX}"
    )


def check_jpeg_files(images: ImageListDataset, threads: int = 8) -> None:
    """Fail at setup, not mid-epoch, if any listed file is not a JPEG (its first 3 bytes).

    Unreadable files are left to the loader, which reports them as the CPU path does.
    """

    def head(path: Path) -> bytes | None:
        try:
            with open(path, "rb") as file:
                return file.read(len(JPEG_MAGIC))
        except OSError:
            return None

    paths = [path for path, _ in images.samples]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        heads = list(pool.map(head, paths))
    others = [path for path, data in zip(paths, heads, strict=True) if data is not None and data != JPEG_MAGIC]
    if others:
        raise not_jpeg_error(others, len(paths), images.name)


class EncodedJpegs(Dataset):
    """``images`` (a dataset read from disk) as (bytes, LAYOUT row, path) per sample, for :func:`decode_batch`."""

    def __init__(self, images: ImageListDataset, image_size: int, resize_size: int, resize: str, train: bool) -> None:
        if images.draft_size is not None:
            raise DatasetError(
                f"{images.name}: dataset.options.draft_size={images.draft_size} shrinks the CPU decode; "
                "dataset.decode=gpu decodes at full size: set dataset.options.draft_size=null"
            )
        check_jpeg_files(images)
        self.images = images
        self.image_size, self.resize_size, self.resize, self.train = image_size, resize_size, resize, train

    @property
    def classes(self) -> list[str]:
        return self.images.classes

    @property
    def targets(self) -> list[int]:
        return self.images.targets

    def __len__(self) -> int:
        return len(self.images)

    def kept_region(self, path: Path, height: int, width: int) -> tuple[int, int]:
        """The part of the decoded image the CPU path keeps: all of it, less Aircraft's banner."""
        if not (isinstance(self.images, FGVCAircraft) and self.images.crop_banner):
            return height, width
        if height <= BANNER_HEIGHT:
            raise BadImageError(path, f"Image is only {height} px tall, no room for the {BANNER_HEIGHT}-px banner")
        return height - BANNER_HEIGHT, width

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, str, int]:
        path, label = self.images.samples[index]
        try:
            data = path.read_bytes()
            with Image.open(io.BytesIO(data)) as header:  # parses the markers only, decodes nothing
                width, height = header.size
                image_format, mode = header.format, header.mode
        except (OSError, UnidentifiedImageError) as err:
            raise BadImageError(path, f"Cannot read image ({err})") from None
        if image_format != "JPEG":
            raise not_jpeg_error([path], 1, self.images.name)
        kept = self.kept_region(path, height, width)
        layout = [*draw_layout(kept, self.image_size, self.resize_size, self.resize, self.train), int(mode == "CMYK")]
        return torch.frombuffer(bytearray(data), dtype=torch.uint8), torch.tensor(layout), str(path), label


def collate_encoded(samples: list[tuple[Tensor, Tensor, str, int]]) -> tuple[EncodedBatch, Tensor]:
    """The DataLoader's ``collate_fn`` for :class:`EncodedJpegs`: byte tensors stay a list (sizes differ)."""
    data, layouts, paths, labels = zip(*samples, strict=True)
    return EncodedBatch(list(data), torch.stack(layouts), list(paths)), torch.tensor(labels)


def decode_batch(batch: EncodedBatch, device: torch.device, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Decode on ``device`` in one call, then resize, crop, flip, normalise: (B, 3, size, size) float32."""
    try:
        decoded = decode_images(batch, device)
    except RuntimeError as err:
        raise DatasetError(
            f"torchvision.io.decode_jpeg on {device} could not decode a batch of {len(batch.paths)} images "
            f"({err}); first: {batch.paths[0]}. Find the bad file with dataset.decode=cpu "
            "(dataset.options.skip_bad_images=true drops it) or re-encode it"
        ) from None
    crops = []
    for image, (kept_height, kept_width, height, width, top, left, size, flip, _) in zip(
        decoded, batch.layout.tolist(), strict=True
    ):
        image = F.resize(image[:, :kept_height, :kept_width], [height, width], antialias=True)
        image = image[:, top : top + size, left : left + size]
        crops.append(image.flip(-1) if flip else image)
    mean_on_device, std_on_device = normalisation(tuple(mean), tuple(std), device)
    # v2.Normalize's arithmetic, with the statistics copied to the device once, not every batch (a blocking copy)
    return F.to_dtype(torch.stack(crops), torch.float32, scale=True).sub_(mean_on_device).div_(std_on_device)


def decode_images(batch: EncodedBatch, device: torch.device) -> list[Tensor]:
    """RGB uint8 images on ``device``: one batched call there, and one on the host for the rare CMYK JPEGs,
    copied over without a sync. torchvision's nvjpeg decoder never enables nvjpeg's CMYK decoding
    (``nvjpegDecodeParamsSetAllowCMYK``), so those go to libjpeg, which matches the CPU path's colours."""
    on_host = batch.layout[:, LAYOUT.index("on_host")].tolist()
    if not any(on_host):
        return decode_jpeg(batch.data, mode=ImageReadMode.RGB, device=device)
    images = list(batch.data)
    for where, flag in ((device, 0), (HOST, 1)):
        indices = [i for i, host in enumerate(on_host) if host == flag]
        if indices:
            decoded = decode_jpeg([batch.data[i] for i in indices], mode=ImageReadMode.RGB, device=where)
            for i, image in zip(indices, decoded, strict=True):
                images[i] = image.to(device, non_blocking=True)
    return images


@functools.cache
def normalisation(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[Tensor, Tensor]:
    """``mean`` and ``std`` as (C, 1, 1) float32 tensors on ``device``."""
    mean_tensor, std_tensor = (torch.tensor(values, dtype=torch.float32).view(-1, 1, 1) for values in (mean, std))
    return mean_tensor.to(device), std_tensor.to(device)
