"""``dataset=folder``: a user's class-per-folder trees and CSV lists, their splits, classes and errors."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
import torch
from helpers.datasets import write_jpeg
from rich.console import Console

from fgvc_mix.data.errors import DatasetError, LayoutError
from fgvc_mix.data.registry import build_dataset
from fgvc_mix.verify import print_report, verify_dataset

CLASSES = ("sparrow", "finch", "wren")  # deliberately not sorted


def tree(top: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """``top/<class>/<i>.jpg``, distinct images (a different seed per file)."""
    for c, (name, count) in enumerate(counts.items()):
        (top / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            write_jpeg(top / name / f"{i:02d}.jpg", seed=seed + 100 * c + i, size=8)
    return top


def splits(root: Path, **options) -> dict[str, list[tuple[str, str]]]:
    """Every split as sorted ``(path relative to root, class name)``."""
    result = {}
    for split in ("train", "val", "test"):
        dataset = build_dataset("folder", root, split, **options)
        rows = [(str(path.relative_to(root)), dataset.classes[label]) for path, label in dataset.samples]
        result[split] = sorted(rows)
    return result


def test_split_folders_give_sorted_classes_and_carve_val_from_train(tmp_path: Path) -> None:
    tree(tmp_path / "train", dict.fromkeys(CLASSES, 9))
    tree(tmp_path / "test", dict.fromkeys(CLASSES, 2), seed=1000)
    train = build_dataset("folder", tmp_path, "train")
    assert train.classes == ["finch", "sparrow", "wren"] and train.num_classes == 3
    parts = splits(tmp_path)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [24, 3, 6]  # val: 0.1/0.9 of 9 per class
    assert all(path.startswith("test/") for path, _ in parts["test"])
    assert not {p for p, _ in parts["val"]} & {p for p, _ in parts["train"]}
    assert all(Path(path).parent.name == name for rows in parts.values() for path, name in rows)


def test_an_official_val_folder_is_used_as_it_is(tmp_path: Path) -> None:
    tree(tmp_path / "train", dict.fromkeys(CLASSES, 4))
    tree(tmp_path / "val", dict.fromkeys(CLASSES, 1), seed=500)
    tree(tmp_path / "test", dict.fromkeys(CLASSES, 1), seed=1000)
    parts = splits(tmp_path)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [12, 3, 3]
    assert all(path.startswith("val/") for path, _ in parts["val"])


def test_images_in_nested_and_linked_folders_belong_to_the_top_class_folder(tmp_path: Path) -> None:
    tree(tmp_path / "elsewhere", {"more": 2}, seed=50)
    tree(tmp_path / "data" / "train", {"sparrow": 2})
    (tmp_path / "data" / "train" / "sparrow" / "linked").symlink_to(tmp_path / "elsewhere" / "more")
    train = build_dataset("folder", tmp_path / "data", "train", split=[1.0, 0.0, 0.0])
    assert train.classes == ["sparrow"] and len(train) == 4


def test_one_tree_is_split_per_class_with_a_seed(tmp_path: Path) -> None:
    tree(tmp_path, {"sparrow": 20, "finch": 10, "wren": 30})
    first = splits(tmp_path)
    assert splits(tmp_path) == first  # seeded: the same split every time
    counts = {s: {c: sum(n == c for _, n in rows) for c in CLASSES} for s, rows in first.items()}
    assert counts["test"] == {"sparrow": 2, "finch": 1, "wren": 3}  # 0.1 of each class
    assert counts["val"] == counts["test"]
    everything = [row for rows in first.values() for row in rows]
    assert len(everything) == len(set(everything)) == 60
    assert splits(tmp_path, seed=1) != first
    wide = splits(tmp_path, split=[0.6, 0.2, 0.2])
    assert len(wide["test"]) == len(wide["val"]) == 12


def write_csv(path: Path, rows: list[tuple[str, str]], header: bool = True) -> None:
    lines = (["path,label"] if header else []) + [f"{p},{label}" for p, label in rows]
    path.write_text("\n".join(lines) + "\n")


def test_the_same_images_as_csv_lists_give_identical_splits_and_labels(tmp_path: Path) -> None:
    folders = tree(tmp_path / "as_tree", {"sparrow": 7, "finch": 5})
    listed = tmp_path / "as_csv"
    listed.mkdir()
    (listed / "images").symlink_to(folders)
    rows = [(f"images/{c}/{i:02d}.jpg", c) for c, n in (("sparrow", 7), ("finch", 5)) for i in range(n)]
    write_csv(listed / "train.csv", rows[::-1], header=False)  # any order, no header
    from_tree = {s: [(p, c) for p, c in rows] for s, rows in splits(folders).items()}
    from_csv = {s: [(p.removeprefix("images/"), c) for p, c in rows] for s, rows in splits(listed).items()}
    assert from_csv == from_tree and sum(map(len, from_tree.values())) == 12


def test_csv_with_numeric_labels_sorts_them_as_numbers(tmp_path: Path) -> None:
    tree(tmp_path / "img", {"a": 3})
    rows = [("img/a/00.jpg", "10"), ("img/a/01.jpg", "2"), ("img/a/02.jpg", "02")]
    write_csv(tmp_path / "train.csv", rows)
    write_csv(tmp_path / "test.csv", [("img/a/00.jpg", "2")])
    train = build_dataset("folder", tmp_path, "train", split=[1.0, 0.0, 0.0])
    assert train.classes == ["2", "10"]
    assert sorted(label for _, label in train.samples) == [0, 0, 1]


def error(root: Path, which: str = "train", **options) -> str:
    with pytest.raises(DatasetError) as caught:
        build_dataset("folder", root, which, **options)
    return str(caught.value)


def test_an_empty_class_folder_is_named(tmp_path: Path) -> None:
    tree(tmp_path, {"sparrow": 3})
    (tmp_path / "finch").mkdir()
    assert f"class folder {tmp_path / 'finch'} holds no images" in error(tmp_path)


def test_a_class_without_train_images_is_named(tmp_path: Path) -> None:
    tree(tmp_path / "train", {"sparrow": 3})
    tree(tmp_path / "test", {"sparrow": 1, "finch": 1})
    message = error(tmp_path, "test")
    assert "class 'finch' has test images" in message and str(tmp_path / "test" / "finch") in message


def test_a_csv_row_naming_a_missing_file_gives_its_line(tmp_path: Path) -> None:
    tree(tmp_path / "img", {"a": 2})
    write_csv(tmp_path / "train.csv", [("img/a/00.jpg", "a"), ("img/a/07.jpg", "a"), ("img/a/08.jpg", "a")])
    message = error(tmp_path)
    assert f"train.csv line 3: {tmp_path / 'img/a/07.jpg'} does not exist (2 row(s)" in message


def test_labels_mixing_names_and_numbers_are_refused_with_both_lines(tmp_path: Path) -> None:
    tree(tmp_path / "img", {"a": 2})
    write_csv(tmp_path / "train.csv", [("img/a/00.jpg", "sparrow"), ("img/a/01.jpg", "3")])
    message = error(tmp_path)
    assert "labels mix names and numbers (train.csv line 2: 'sparrow', train.csv line 3: '3')" in message


def test_a_malformed_csv_row_and_bad_shares_are_refused(tmp_path: Path) -> None:
    tree(tmp_path / "img", {"a": 2})
    (tmp_path / "train.csv").write_text("img/a/00.jpg,a\nimg/a/01.jpg\n")
    assert "train.csv line 2: expected path,label" in error(tmp_path)
    write_csv(tmp_path / "train.csv", [("img/a/00.jpg", "a")])
    assert "dataset.options.split must be [train, val, test] shares" in error(tmp_path, split=[0.5, 0.5])
    assert "has no val images (no val/ folder or val.csv" in error(tmp_path, "val", split=[0.9, 0.0, 0.1])
    assert "a share of 0); give it a share." in error(tmp_path, "test", split=[0.9, 0.1, 0.0])


def test_split_folders_beside_class_folders_are_refused(tmp_path: Path) -> None:
    tree(tmp_path / "train", {"a": 1})
    tree(tmp_path, {"b": 1})
    with pytest.raises(LayoutError, match=r"mixes split folders and other folders \(b/, train/\)"):
        build_dataset("folder", tmp_path, "train")


def test_non_image_files_are_left_out_with_a_count_and_named_by_verify(tmp_path: Path, caplog) -> None:
    tree(tmp_path, {"sparrow": 10, "finch": 10})
    (tmp_path / "finch" / "notes.txt").write_text("field notes")
    (tmp_path / "finch" / "Thumbs.db").write_bytes(b"\0")
    (tmp_path / "finch" / ".DS_Store").write_bytes(b"\0")  # hidden files are not the user's data
    with caplog.at_level(logging.WARNING):
        train = build_dataset("folder", tmp_path, "train")
    assert len(train) == 16
    assert "left out 2 file(s) of the train split that are not images" in caplog.text
    report = verify_dataset("folder", tmp_path)
    assert [(p.name, reason) for _, p, reason in report.problems] == [
        ("Thumbs.db", "not an image file (left out)"),
        ("notes.txt", "not an image file (left out)"),
    ]


def test_unreadable_images_are_counted_or_named(tmp_path: Path, caplog) -> None:
    tree(tmp_path / "train", {"sparrow": 4})
    tree(tmp_path / "test", {"sparrow": 1}, seed=1000)
    (tmp_path / "train" / "sparrow" / "broken.jpg").write_bytes(b"not a jpeg")
    report = verify_dataset("folder", tmp_path)
    assert [p.name for _, p, _ in report.problems] == ["broken.jpg"]
    with caplog.at_level(logging.WARNING):
        train = build_dataset("folder", tmp_path, "train", skip_bad_images=True, split=[1.0, 0.0, 0.0])
    assert len(train) == 4 and "skipped 1 of 5 images" in caplog.text


def test_duplicates_across_splits_are_warned_with_a_count(tmp_path: Path, caplog) -> None:
    tree(tmp_path / "train", {"sparrow": 4, "finch": 4})
    tree(tmp_path / "test", {"sparrow": 2}, seed=0)  # the same seeds: byte-identical to two train images
    with caplog.at_level(logging.WARNING):
        build_dataset("folder", tmp_path, "train")
    assert "2 image(s) are in more than one split" in caplog.text
    assert str(tmp_path / "test" / "sparrow") in caplog.text


def test_verify_summary_names_the_smallest_class_and_the_image_sizes(tmp_path: Path) -> None:
    tree(tmp_path / "train", {"sparrow": 5, "finch": 3})
    tree(tmp_path / "test", {"sparrow": 1, "finch": 1}, seed=1000)
    write_jpeg(tmp_path / "train" / "finch" / "big.jpg", size=24)
    out = io.StringIO()
    print_report(verify_dataset("folder", tmp_path, {"split": [0.9, 0.0, 0.1]}), Console(file=out, width=200))
    text = out.getvalue()
    assert "train: smallest class finch (4 images) | image sizes 8x8 .. 24x24" in text
    assert "test: smallest class finch (1 images) | image sizes 8x8 .. 8x8" in text
    assert "folder at" in text and "2 classes: all readable" in text


def test_datamodule_reads_num_classes_and_keeps_every_transform_option(tmp_path: Path) -> None:
    from fgvc_mix.data.datamodule import FGVCDataModule

    tree(tmp_path, {"sparrow": 12, "finch": 12, "wren": 12})
    options = {"name": "folder", "num_classes": None, "root": str(tmp_path), "num_workers": 0, "batch_size": 5}
    sizes = {"image_size": 16, "resize_size": 20}
    datamodule = FGVCDataModule(**options, **sizes, resize="shorter", decode="gpu", drop_last=True)
    datamodule.setup("fit")
    assert datamodule.hparams.num_classes == 3 and datamodule.class_names == ["finch", "sparrow", "wren"]
    loader = datamodule.train_dataloader()
    assert len(loader) == 30 // 5
    images, targets = datamodule.to_device(next(iter(loader)), torch.device("cpu"))
    assert images.shape == (5, 3, 16, 16) and targets.max() < 3
    square = FGVCDataModule(**options, **sizes, resize="square", drop_last=False, val_source="holdout")
    square.setup("fit")
    assert len(square.datasets["train"]) + len(square.datasets["val"]) == 30


def test_experiment_finetune_is_lite0_snapmix_and_the_papers_optimiser(tmp_path: Path) -> None:
    from helpers import compose_config  # composing only: no weights are loaded

    cfg = compose_config(["experiment=finetune", "dataset=folder", f"dataset.root={tmp_path}"], tmp_path)
    assert cfg.model.name == "efficientnet_lite0" and cfg.model.pretrained
    assert cfg.mix._target_ == "fgvc_mix.mixing.SnapMix" and cfg.optim.optimizer._target_ == "torch.optim.SGD"
    assert cfg.dataset.num_classes is None and cfg.trainer.max_epochs == cfg.optim.epochs == 50
    assert list(cfg.optim.scheduler.milestones) == [20, 38, 45]
    assert compose_config(["experiment=finetune", "model=small_cnn"], tmp_path).model.name == "small_cnn"


def test_evaluate_refuses_data_whose_classes_differ_from_the_checkpoints() -> None:
    from types import SimpleNamespace

    from fgvc_mix.errors import UserError
    from fgvc_mix.evaluation.checkpoints import check_class_names

    data = SimpleNamespace(class_names=["finch", "robin"], hparams=SimpleNamespace(name="folder", root="/d"))
    check_class_names("a.ckpt", ["finch", "robin"], data)
    check_class_names("a.ckpt", None, data)  # checkpoints without names are not checked
    with pytest.raises(UserError, match="class 1 is 'wren' in the checkpoint but 'robin' in the data"):
        check_class_names("a.ckpt", ["finch", "wren"], data)
    with pytest.raises(UserError, match=r"\(3 classes in the checkpoint, 2 in the data\)"):
        check_class_names("a.ckpt", ["finch", "robin", "wren"], data)
