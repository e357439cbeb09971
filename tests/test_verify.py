"""``fgvc_mix.verify``: counts per split and class, every unreadable file listed, exit codes."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.datasets import write_cub_style, write_jpeg
from rich.console import Console

from fgvc_mix.data.errors import DatasetError
from fgvc_mix.verify import print_report, splits_to_scan, verify_dataset

CLASSES = [("1", "001.Black_footed_Albatross"), ("2", "002.Laysan_Albatross")]


@pytest.fixture
def cub_base(tmp_path: Path) -> Path:
    """Class 1: 3 train + 1 test images; class 2: 2 train + 2 test."""
    layout = [(1, 1), (1, 1), (1, 1), (1, 0), (2, 1), (2, 1), (2, 0), (2, 0)]
    images = [
        (str(n), f"{CLASSES[c - 1][1]}/img_{n}.jpg", str(c), is_train) for n, (c, is_train) in enumerate(layout, 1)
    ]
    base = tmp_path / "data" / "CUB_200_2011"
    write_cub_style(base, images, CLASSES)
    return base


def report_text(report) -> str:
    out = io.StringIO()
    print_report(report, Console(file=out, width=200))
    return out.getvalue()


def test_good_tree_counts_and_exit_zero(cub_base: Path) -> None:
    report = verify_dataset("cub", cub_base.parent, {"skip_bad_images": False})
    assert list(report.splits) == ["train", "test"]
    assert report.splits["train"].counts == [3, 2] and report.splits["test"].counts == [1, 2]
    assert report.splits["train"].classes == [name for _, name in CLASSES]
    assert report.problems == [] and report.exit_code == 0
    text = report_text(report)
    assert "002.Laysan_Albatross" in text
    assert "8 images (train 5, test 3), 2 classes: all readable" in text
    assert "train: of 5 images, with boxes 5, parts 0, visible parts 0" in text


def test_annotation_coverage_counts_boxes_parts_and_visible_parts(cub_base: Path) -> None:
    # Train images 1, 2, 3, 5, 6: parts for 1, 2 and 5, of which 2 has none visible.
    rows = ["1 1 2.0 3.0 1", "1 2 0.0 0.0 0", "2 1 0.0 0.0 0", "5 1 4.0 4.0 1", "7 1 1.0 1.0 1"]
    (cub_base / "parts").mkdir()
    (cub_base / "parts" / "part_locs.txt").write_text("".join(f"{row}\n" for row in rows))
    report = verify_dataset("cub", cub_base)
    assert report.splits["train"].coverage == {"boxes": 5, "parts": 3, "visible parts": 2}
    assert report.splits["test"].coverage == {"boxes": 3, "parts": 1, "visible parts": 1}
    assert "test: of 3 images, with boxes 3, parts 1, visible parts 1" in report_text(report)


def test_missing_and_truncated_files_are_listed(cub_base: Path) -> None:
    images = cub_base / "images" / CLASSES[0][1]
    (images / "img_2.jpg").unlink()
    data = write_jpeg(images / "img_4.jpg", size=64).read_bytes()
    (images / "img_4.jpg").write_bytes(data[: len(data) // 2])
    # skip_bad_images=true in the config must not hide the bad files from verify.
    report = verify_dataset("cub", cub_base, {"skip_bad_images": True}, num_threads=1)
    assert report.exit_code == 1
    assert [(split, path.name) for split, path, _ in report.problems] == [("train", "img_2.jpg"), ("test", "img_4.jpg")]
    assert "does not exist" in report.problems[0][2] and "truncated" in report.problems[1][2]
    assert report.splits["train"].counts == [3, 2]  # listed images, readable or not
    text = report_text(report)
    assert str(images / "img_2.jpg") in text and str(images / "img_4.jpg") in text
    assert "2 missing or unreadable" in text


def test_annotation_problems_raise_and_splits(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        verify_dataset("cub", tmp_path / "nowhere")
    assert splits_to_scan("aircraft", {"use_val": False}) == ("train", "test")
    assert splits_to_scan("flowers102", {"use_val": True}) == ("train", "val", "test")
    assert splits_to_scan("cub", {"use_val": True}) == ("train", "test")
    assert splits_to_scan("folder", {}) == ("train", "val", "test")


def test_hydra_entry_point_exit_code(cub_base: Path, tmp_path: Path) -> None:
    (cub_base / "images" / CLASSES[1][1] / "img_7.jpg").unlink()
    command = [sys.executable, "-m", "fgvc_mix.verify", "dataset=cub", f"dataset.root={cub_base}"]
    result = subprocess.run(
        [*command, f"hydra.run.dir={tmp_path / 'run'}", "threads=1"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr
    assert "img_7.jpg" in result.stdout and "1 missing or unreadable" in result.stdout
