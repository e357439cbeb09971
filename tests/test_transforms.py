"""The image pipelines against the SnapMix authors' (``datasets/tfs.py``), on a 500x375 photo-sized image.

The authors resize CUB and NABirds by the shorter side (``warp=False``: a 500x375 bird
becomes 682x512) and warp Cars and Aircraft to 512x512 (``warp=True``), then crop 448.
Their pipeline is classic torchvision on PIL images; ours resizes tensors with
antialiasing, so the two agree up to rounding, not bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from helpers import compose_config
from hydra.utils import instantiate
from PIL import Image

from fgvc_mix.data import FGVCDataModule
from fgvc_mix.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform, resize_transform, train_transform

WIDTH, HEIGHT = 500, 375  # a typical CUB photo
STD = torch.tensor(IMAGENET_STD)[:, None, None]
MEAN = torch.tensor(IMAGENET_MEAN)[:, None, None]


def to_pixels(normalised: torch.Tensor) -> torch.Tensor:
    """Back to 0..255 pixel values, to state tolerances in grey levels."""
    return (normalised * STD + MEAN) * 255


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A smooth 500x375 RGB image (low-frequency noise, as photos mostly are), reproducible."""
    coarse = np.random.default_rng(0).uniform(0, 255, size=(12, 16, 3)).astype(np.uint8)
    return Image.fromarray(coarse).resize((WIDTH, HEIGHT), Image.BICUBIC)


@pytest.fixture(scope="module")
def ramps() -> Image.Image:
    """Red grows 0.5 per pixel to the right, green 0.5 per pixel downwards: a crop's slopes give the scale."""
    x = np.arange(WIDTH)[None, :].repeat(HEIGHT, 0) * 0.5
    y = np.arange(HEIGHT)[:, None].repeat(WIDTH, 1) * 0.5
    return Image.fromarray(np.rint(np.stack([x, y, np.zeros_like(x)], axis=-1)).astype(np.uint8))


def geometry(normalised: torch.Tensor) -> tuple[float, float, float, float]:
    """Scale (output pixels per source pixel) in x and y, and the crop's left and top offsets in output pixels.

    Inside the crop red is 0.5 * source x, green 0.5 * source y; the crop's own edge
    columns and rows are left out of the fit (antialiasing touches them).
    """
    pixels = to_pixels(normalised)[:, 8:-8, 8:-8]
    scale_x = 0.5 / float(pixels[0].diff(dim=1).mean().abs())  # abs: a flipped crop runs right to left
    scale_y = 0.5 / float(pixels[1].diff(dim=0).mean())
    left = float(pixels[0].min()) / 0.5 * scale_x - 8
    top = float(pixels[1].min()) / 0.5 * scale_y - 8
    return scale_x, scale_y, left, top


@pytest.mark.parametrize(
    ("resize", "reference_size"), [("shorter", 512), ("square", (512, 512))], ids=["cub", "cars_aircraft"]
)
def test_test_transform_is_the_authors(photo, resize, reference_size):
    """CUB: Resize(512) (shorter side) + CenterCrop(448); Cars/Aircraft: Resize((512, 512)) + CenterCrop(448)."""
    authors = T.Compose(
        [T.Resize(reference_size), T.CenterCrop(448), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    ours = eval_transform(448, 512, resize=resize)(photo)
    expected = authors(photo)
    assert ours.shape == expected.shape == (3, 448, 448)
    difference = (to_pixels(ours) - to_pixels(expected)).abs()
    # PIL and tensor antialiasing agree to float rounding here; a squashed or shifted picture is off by tens.
    assert difference.mean() < 0.1 and difference.max() < 1


def test_shorter_side_resize_keeps_the_aspect_ratio(photo):
    assert resize_transform(512, "shorter")(photo).size == (682, 512)  # int(512 * 500 / 375), torchvision's rounding
    assert T.Resize(512)(photo).size == (682, 512)  # the authors' call gives the same
    assert resize_transform(512, "square")(photo).size == (512, 512)


@pytest.mark.parametrize(("resize", "resized_width"), [("shorter", 682), ("square", 512)])
def test_train_crops_come_from_the_resized_image(ramps, resize, resized_width):
    """Random 448 crops (flipped or not) of the image resized to ``resized_width`` x 512."""
    transform = train_transform(448, 512, resize=resize)
    torch.manual_seed(0)
    lefts = []
    for _ in range(8):
        crop = transform(ramps)
        assert crop.shape == (3, 448, 448)
        scale_x, scale_y, left, top = geometry(crop)
        assert scale_x == pytest.approx(resized_width / WIDTH, rel=0.01)
        assert scale_y == pytest.approx(512 / HEIGHT, rel=0.01)
        assert -1 <= left <= resized_width - 448 + 1 and -1 <= top <= 512 - 448 + 1
        lefts.append(left)
    if resize == "shorter":
        assert max(lefts) > 512 - 448 + 1  # crops reach past where a 512-px square would end


@pytest.mark.parametrize(
    ("dataset", "resized_width"), [("cub", 682), ("nabirds", 682), ("cars", 512), ("aircraft", 512)]
)
def test_dataset_configs_resize_as_the_authors(ramps, dataset, resized_width, tmp_path):
    """``dataset=<name>`` reaches the datamodule's pipelines: birds keep their aspect ratio, cars and aircraft warp."""
    cfg = compose_config([f"dataset={dataset}", "dataset.root=/x"], tmp_path)
    datamodule = instantiate(cfg.dataset)
    for train in (True, False):
        scale_x, scale_y, _, _ = geometry(datamodule.transform(train)(ramps))
        assert scale_x == pytest.approx(resized_width / WIDTH, rel=0.01)
        assert scale_y == pytest.approx(512 / HEIGHT, rel=0.01)


def test_unknown_resize_mode_names_the_option(tmp_path):
    with pytest.raises(ValueError, match=r"dataset\.resize='keep'.*shorter.*square"):
        FGVCDataModule(name="cub", root=str(tmp_path), num_classes=200, resize="keep")
