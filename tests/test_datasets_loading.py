"""Image loading and the shared ImageListDataset: every mode loads as 8-bit RGB, and every
unreadable file is one clear DatasetError (or, with skip_bad_images, a logged skip)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers.datasets import write_jpeg
from PIL import Image

from fgvc_mix.data.annotation_checks import check_class_id, check_not_empty
from fgvc_mix.data.annotation_text import read_pairs
from fgvc_mix.data.decoding import load_rgb_image, to_rgb
from fgvc_mix.data.errors import BadImageError, DatasetError
from fgvc_mix.data.image_list import ImageListDataset


def pixel(path: Path) -> tuple[int, ...]:
    img = load_rgb_image(path)
    assert img.mode == "RGB"
    assert img.size == (8, 8)
    return tuple(int(v) for v in np.asarray(img)[0, 0])


def test_grayscale_cmyk_rgba_palette_load_as_rgb(tmp_path: Path) -> None:
    Image.new("L", (8, 8), 77).save(tmp_path / "gray.jpg", quality=100)
    assert pixel(tmp_path / "gray.jpg") == (77, 77, 77)

    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)
    r, g, b = pixel(tmp_path / "cmyk.jpg")
    assert r > 240 and g < 15 and b < 15

    # Alpha is dropped (like torchvision's loader), not composited: colour survives alpha=0.
    Image.new("RGBA", (8, 8), (10, 20, 30, 0)).save(tmp_path / "rgba.png")
    assert pixel(tmp_path / "rgba.png") == (10, 20, 30)
    Image.new("LA", (8, 8), (90, 128)).save(tmp_path / "la.png")
    assert pixel(tmp_path / "la.png") == (90, 90, 90)

    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pal.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Pillow palette-transparency warning
        assert pixel(tmp_path / "pal.png") == (200, 100, 50)


def test_16bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([0, 257, 32896, 65535] * 16, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(values).save(tmp_path / "depth16.png")
    with Image.open(tmp_path / "depth16.png") as raw:
        assert raw.mode.startswith("I")  # Pillow opens 16-bit grayscale as I;16 (or I)
    out = np.asarray(load_rgb_image(tmp_path / "depth16.png"))
    assert out.dtype == np.uint8
    assert out[0, :4, 0].tolist() == [0, 1, 128, 255]
    assert (out[..., 0] == out[..., 2]).all()

    # Mode "I" (32-bit) is read as 16-bit data too; "F" in [0, 1] is scaled by 255.
    assert np.asarray(to_rgb(Image.new("I", (2, 2), 65535)))[0, 0].tolist() == [255, 255, 255]
    assert np.asarray(to_rgb(Image.new("F", (2, 2), 0.5)))[0, 0].tolist() == [128, 128, 128]


def test_png_data_behind_jpg_name(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "really_png.jpg", format="PNG")
    assert pixel(tmp_path / "really_png.jpg") == (1, 2, 3)


@pytest.mark.parametrize("problem", ["missing", "empty", "truncated", "garbage"])
def test_bad_image_is_one_clear_error(tmp_path: Path, problem: str) -> None:
    path = tmp_path / f"{problem}.jpg"
    if problem == "empty":
        path.write_bytes(b"")
    elif problem == "truncated":
        data = write_jpeg(tmp_path / "full.jpg").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif problem == "garbage":
        path.write_bytes(b"this is not an image at all")
    reason = {"missing": "does not exist", "empty": "empty", "truncated": "truncated", "garbage": "Not a readable"}
    dataset = ImageListDataset([(path, 0)], ["a"])
    with pytest.raises(DatasetError, match=rf"{reason[problem]}.*{problem}\.jpg.*skip_bad_images=true") as info:
        dataset[0]  # loading never silently skips
    assert isinstance(info.value, BadImageError) and info.value.path == path


def test_draft_size_decodes_large_jpeg_at_reduced_size(tmp_path: Path) -> None:
    path = tmp_path / "large.jpg"
    Image.new("RGB", (512, 384), (90, 140, 60)).save(path)
    assert load_rgb_image(path).size == (512, 384)  # off by default
    # The largest scale keeping both sides >= 64 is 1/4 (128 x 96): 1/8 would give 48 rows.
    assert ImageListDataset([(path, 0)], ["a"], draft_size=64)[0][0].size == (128, 96)
    assert ImageListDataset([(path, 0)], ["a"])[0][0].size == (512, 384)
    png = tmp_path / "large.png"
    Image.new("RGB", (512, 384)).save(png)
    assert load_rgb_image(png, draft_size=64).size == (512, 384)  # not a JPEG: decoded as is
    with pytest.raises(DatasetError, match=r"draft_size must be a positive integer"):
        ImageListDataset([(path, 0)], ["a"], draft_size=0)


def test_dataset_getitem_transform_targets(tmp_path: Path) -> None:
    paths = [write_jpeg(tmp_path / f"{i}.jpg", seed=i, size=8) for i in range(3)]
    dataset = ImageListDataset(
        [(paths[0], 0), (paths[1], 2), (paths[2], 1)], ["a", "b", "c"], transform=lambda im: im.size
    )
    assert len(dataset) == 3 and dataset.num_classes == 3
    assert dataset.targets == [0, 2, 1]
    assert dataset[1] == ((8, 8), 2)
    assert isinstance(ImageListDataset([(paths[0], 0)], ["a"])[0][0], Image.Image)


def test_skip_bad_images_drops_logs_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = [write_jpeg(tmp_path / f"good{i}.jpg", seed=i, size=8) for i in range(3)]
    (tmp_path / "zero.jpg").write_bytes(b"")
    data = write_jpeg(tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    samples = [(good[0], 0), (tmp_path / "zero.jpg", 1), (good[1], 1), (tmp_path / "cut.jpg", 0)]
    samples += [(tmp_path / "absent.jpg", 1), (good[2], 0)]
    boxes = [(float(i), 0.0, 1.0, 1.0) for i in range(len(samples))]
    with caplog.at_level(logging.WARNING, logger="fgvc_mix.data.image_list"):
        dataset = ImageListDataset(samples, ["a", "b"], skip_bad_images=True, boxes=boxes)
    assert [p for p, _ in dataset.samples] == good
    assert dataset.targets == [0, 1, 0]
    assert [b[0] for b in dataset.boxes] == [0.0, 2.0, 5.0]  # boxes stay aligned
    text = caplog.text
    for name in ("zero.jpg", "cut.jpg", "absent.jpg"):
        assert name in text
    assert "skipped 3 of 6 images" in text

    with pytest.raises(DatasetError, match=r"all 1 images.*absent\.jpg"):
        ImageListDataset([(tmp_path / "absent.jpg", 0)], ["a"], skip_bad_images=True)


def test_annotation_helpers_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("1025794 707-320\n\n0062765 F/A-18\n1042824 Cessna 172\n")
    assert read_pairs(path, dataset="x") == [
        (1, "1025794", "707-320"),
        (3, "0062765", "F/A-18"),
        (4, "1042824", "Cessna 172"),
    ]
    path.write_text("1 a\n2\n")
    with pytest.raises(DatasetError, match=r"list\.txt line 2"):
        read_pairs(path, dataset="x")
    with pytest.raises(DatasetError, match=r"gone\.txt is missing"):
        read_pairs(tmp_path / "gone.txt", dataset="x")
    with pytest.raises(DatasetError, match=r"labels\.txt line 7: class id 0 is out of range 1\.\.3"):
        check_class_id(0, num_classes=3, first=1, dataset="x", source=Path("labels.txt"), where="line 7")
    with pytest.raises(DatasetError, match=r"split 'test' is empty according to split\.txt"):
        check_not_empty([], dataset="x", split="test", source="split.txt")
