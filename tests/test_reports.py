"""Evaluation report, predict and export on a checkpoint trained for one step."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from helpers import TINY_SYNTHETIC, compose_config
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from fgvc_mix.evaluation.checkpoints import evaluate, load_checkpoint
from fgvc_mix.export import export
from fgvc_mix.predict import predict
from fgvc_mix.train import train


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    overrides = ["optim.epochs=1", "trainer.accelerator=cpu", "+trainer.limit_train_batches=1", "logger=csv"]
    train(compose_config([*TINY_SYNTHETIC, *overrides, "~callbacks.progress_bar", "~callbacks.mixed_images"], run))
    GlobalHydra.instance().clear()
    return run / "checkpoints" / "last.ckpt"


def test_evaluate_writes_the_report(checkpoint, tmp_path):
    plain = evaluate(checkpoint, {"num_workers": 0}, accelerator="cpu")
    metrics = evaluate(checkpoint, {"num_workers": 0}, accelerator="cpu", tta="flip", output_dir=tmp_path)
    assert set(plain) == set(metrics) == {"test/acc", "test/acc_top5", "test/acc_macro", "test/loss"}
    assert json.loads((tmp_path / "metrics.json").read_text())["tta"] == "flip"
    module, _ = load_checkpoint(checkpoint)
    with open(tmp_path / "per_class_accuracy.csv") as file:
        rows = list(csv.DictReader(file))
    assert [r["class"] for r in rows] == module.hparams.class_names
    assert sum(int(r["support"]) for r in rows) == 32  # the tiny test split
    accuracies = [float(r["accuracy"]) for r in rows if r["accuracy"]]
    assert np.mean(accuracies) == pytest.approx(metrics["test/acc_macro"], abs=1e-5)
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 0
    with open(tmp_path / "confused_pairs.csv") as file:
        pairs = list(csv.DictReader(file))
    assert all(p["true"] != p["predicted"] and p["true"] in module.hparams.class_names for p in pairs)
    assert (tmp_path / "confused_pairs.md").read_text().startswith("| true class |")
    with pytest.raises(ValueError, match="tta"):
        evaluate(checkpoint, {"num_workers": 0}, accelerator="cpu", tta="rotate")


def test_predict_prints_top_k_names_for_a_folder_or_a_file(checkpoint, tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(tmp_path / name)
    results = predict(checkpoint, tmp_path, top_k=3, accelerator="cpu")
    module, _ = load_checkpoint(checkpoint)
    assert [p.name for p, _ in results] == ["a.png", "b.jpg"]
    for _, top in results:
        probabilities = [p for _, p in top]
        assert len(top) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert all(name in module.hparams.class_names for name, _ in top)
    assert len(predict(checkpoint, tmp_path / "a.png", accelerator="cpu")[0][1]) == 5
    with pytest.raises(FileNotFoundError, match="images="):
        predict(checkpoint, tmp_path / "missing", accelerator="cpu")


def test_torchscript_export_matches_the_checkpoint(checkpoint, tmp_path):
    path = export(checkpoint, "torchscript", tmp_path / "model.pt")
    module, _ = load_checkpoint(checkpoint)
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(path))(images), module(images))
    assert json.loads(path.with_suffix(".json").read_text())["class_names"] == module.hparams.class_names
    with pytest.raises(ValueError, match="format"):
        export(checkpoint, "tflite")


def test_onnx_export_matches_the_checkpoint(checkpoint, tmp_path):
    pytest.importorskip("onnx", reason="pip install -e '.[dev]' installs onnx")
    onnxruntime = pytest.importorskip("onnxruntime", reason="pip install -e '.[dev]' installs onnxruntime")
    path = export(checkpoint, "onnx", tmp_path / "model.onnx")
    module, _ = load_checkpoint(checkpoint)
    images = torch.randn(2, 3, 64, 64)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(logits, module(images).numpy(), rtol=1e-4, atol=1e-4)
