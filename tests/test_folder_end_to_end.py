"""``dataset=folder`` end to end: the synthetic demo's images written as a user's own data (split folders,
CSV lists, one class-per-folder tree), then train, verify, evaluate, predict and export, as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import compose_config, run_module
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from fgvc_mix.errors import UserError
from fgvc_mix.evaluation.checkpoints import evaluate
from fgvc_mix.export import export
from fgvc_mix.predict import predict
from fgvc_mix.synthetic_export import demo_test_split
from fgvc_mix.train import train

pytestmark = pytest.mark.slow

DEMO = ["dataset.num_classes=4", "dataset.image_size=32", "dataset.options.test_size=48"]
TINY = [
    "experiment=finetune",
    "dataset=folder",
    "model=small_cnn",  # the finetune default (EfficientNet-Lite0) is too slow for a test
    "dataset.image_size=32",
    "dataset.resize_size=36",
    "dataset.batch_size=8",
    "dataset.num_workers=0",
    "optim.epochs=1",
    "trainer.accelerator=cpu",
]


def folder_name(class_name: str) -> str:
    return class_name.replace("/", "_")  # the demo's class names hold '/', which a folder name cannot


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The demo's 48 test images as ``<root>/train/<class>/`` (9 per class) and ``test/<class>/`` (3 per class)."""
    root = tmp_path_factory.mktemp("own_images")
    split = demo_test_split(DEMO)
    seen: dict[int, int] = {}
    for index in range(len(split)):
        image, label = split[index]
        seen[label] = seen.get(label, 0) + 1
        part = "test" if seen[label] > 9 else "train"
        path = root / part / folder_name(split.classes[label]) / f"{index:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path, quality=95)
    return root, sorted(folder_name(c) for c in split.classes)


def test_split_folders_through_every_command(images: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, classes = images
    checked = run_module("verify", "dataset=folder", f"dataset.root={root}", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert "test: smallest class" in checked.stdout and "image sizes 32x32 .. 32x32" in checked.stdout
    assert "48 images (train 32, val 4, test 12), 4 classes: all readable" in checked.stdout

    run = tmp_path / "run"
    trained = run_module("train", *TINY, f"dataset.root={root}", f"hydra.run.dir={run}", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    ckpt = run / "checkpoints" / "last.ckpt"

    predicted = run_module("predict", f"ckpt_path={ckpt}", f"images={root / 'test'}", "top_k=4", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert all(f"%  {name}\n" in predicted.stdout for name in classes)  # every class printed by name
    assert predicted.stdout.count(".jpg\n") == 12

    metrics = evaluate(ckpt, accelerator="cpu", output_dir=tmp_path / "report")
    assert 0.0 <= metrics["test/acc"] <= 1.0
    per_class = (tmp_path / "report" / "per_class_accuracy.csv").read_text()
    assert all(name in per_class for name in classes)
    exported = export(ckpt, "torchscript", tmp_path / "model.pt")
    assert json.loads(exported.with_suffix(".json").read_text())["class_names"] == classes

    renamed = tmp_path / "renamed"  # the same images, one class renamed since training
    shutil.copytree(root, renamed, symlinks=True)
    for part in ("train", "test"):
        (renamed / part / classes[0]).rename(renamed / part / "aa_new_name")
    with pytest.raises(UserError, match=f"class 0 is '{classes[0]}' in the checkpoint but 'aa_new_name' in the data"):
        evaluate(ckpt, {"root": str(renamed)}, accelerator="cpu")


@pytest.mark.parametrize("layout", ["csv", "tree"])
def test_csv_lists_and_one_tree_train_evaluate_and_predict_by_name(
    images: tuple[Path, list[str]], tmp_path: Path, layout: str
) -> None:
    root, classes = images
    data = tmp_path / "data"
    data.mkdir()
    if layout == "csv":  # the same files, listed: labels are the class names
        (data / "images").symlink_to(root)
        for part in ("train", "test"):
            rows = [f"images/{p.relative_to(root)},{p.parent.name}" for p in sorted((root / part).rglob("*.jpg"))]
            (data / f"{part}.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    else:  # every image in one <class>/ tree, cut 80/10/10 per class
        for path in root.rglob("*.jpg"):
            (data / path.parent.name).mkdir(exist_ok=True)
            (data / path.parent.name / f"{path.parent.parent.name}_{path.name}").symlink_to(path)
    cfg = compose_config([*TINY, f"dataset.root={data}"], tmp_path / "run")
    train(cfg)
    GlobalHydra.instance().clear()
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert 0.0 <= evaluate(ckpt, accelerator="cpu")["test/acc"] <= 1.0
    results = predict(ckpt, root / "test", top_k=4, accelerator="cpu")
    assert len(results) == 12 and {name for _, top in results for name, _ in top} == set(classes)
