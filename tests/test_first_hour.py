"""A new user's first commands, run as they type them (subprocesses): what they print and what they leave on disk."""

from __future__ import annotations

import csv
import json
import logging
import re
import subprocess
import warnings
from pathlib import Path

import pytest
from helpers import TINY_SYNTHETIC, compose_config, run_module
from hydra.core.global_hydra import GlobalHydra

from fgvc_mix.data import FGVCDataModule
from fgvc_mix.data.decoding import load_rgb_image
from fgvc_mix.synthetic_export import LABELS_FILE, export_samples
from fgvc_mix.training.config import build_from_config
from fgvc_mix.training.run_logging import KnownNoise, filter_known_noise

TEST_SIZE = next(int(o.split("=")[1]) for o in TINY_SYNTHETIC if o.startswith("dataset.options.test_size="))


def demo_datamodule(tmp_path: Path) -> FGVCDataModule:
    """The tiny demo's datamodule, set up, as ``python -m fgvc_mix.train`` with ``TINY_SYNTHETIC`` builds it."""
    datamodule = build_from_config(compose_config(TINY_SYNTHETIC, tmp_path).dataset, _convert_="all")
    GlobalHydra.instance().clear()
    datamodule.setup("test")
    return datamodule


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One epoch of the tiny synthetic demo through ``python -m fgvc_mix.train``: (run dir, the finished process)."""
    run_dir = tmp_path_factory.mktemp("train") / "run"
    overrides = [*TINY_SYNTHETIC, "optim.epochs=1", "trainer.accelerator=cpu", f"hydra.run.dir={run_dir}"]
    result = run_module("train", *overrides, cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


def test_train_log_file_records_lightning_and_the_test_metrics(tiny_run):
    run_dir, _ = tiny_run
    log = (run_dir / "train.log").read_text()
    assert "Seed set to 0" in log and "`Trainer.fit` stopped" in log  # Lightning's own INFO lines
    logged = float(re.search(r"test/acc\s+(\d\.\d{4})\n", log).group(1))
    assert logged == pytest.approx(json.loads((run_dir / "metrics.json").read_text())["test/acc"], abs=5e-5)


def test_train_prints_no_known_noise_but_keeps_other_warnings(tiny_run):
    _, result = tiny_run
    output = result.stdout + result.stderr
    for noise in ("LitLogger", "LeafSpec"):
        assert noise not in output
    flops = re.search(r"Total FLOPs: (\S+)", result.stdout).group(1)
    assert flops != "0"  # the model summary counts a real forward pass
    assert "smaller than the logging interval" in result.stderr  # a warning the user can act on still shows


def test_export_prints_no_torchscript_deprecation_and_leaves_no_empty_log(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    result = run_module("export", f"ckpt_path={run_dir}/checkpoints/last.ckpt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert "torch.jit" not in result.stderr
    assert not list(tmp_path.iterdir())  # no export.log (nor a run folder) in the working directory


def test_synthetic_export_feeds_predict_which_writes_nothing(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    exported = run_module("synthetic_export", "samples", "5", f"dataset.options.test_size={TEST_SIZE}", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-3000:]
    with (tmp_path / "samples" / LABELS_FILE).open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and all((tmp_path / "samples" / row["file"]).is_file() for row in rows)

    workdir = tmp_path / "work"
    workdir.mkdir()
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    result = run_module("predict", f"ckpt_path={ckpt}", f"images={tmp_path / 'samples'}", "top_k=3", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not list(workdir.iterdir())  # no outputs/, no .hydra/, no predict.log
    printed = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert [Path(line).name for line in printed] == [row["file"] for row in rows]
    names = [line.split(maxsplit=1)[1] for line in result.stdout.splitlines() if line.startswith(" ")]
    assert len(names) == 3 * len(rows) and set(names) <= set(demo_datamodule(tmp_path).class_names)


def test_exported_images_are_the_demo_test_images_through_the_eval_transform(tmp_path):
    labels = export_samples(tmp_path, 4, TINY_SYNTHETIC)
    datamodule = demo_datamodule(tmp_path)
    test, transform = datamodule.datasets["test"], datamodule.transform(train=False)
    with labels.open() as handle:
        rows = list(csv.DictReader(handle))
    for index, row in enumerate(rows):
        image, label = test[index]
        assert row["class_name"] == datamodule.class_names[label] and int(row["label"]) == label
        # PNG keeps 8 bits: at most half a grey level (/ the normalisation's std) from the in-memory image.
        assert (transform(load_rgb_image(tmp_path / row["file"])) - image).abs().max() < 0.01
    with pytest.raises(ValueError, match="test_size"):
        export_samples(tmp_path / "too_many", TEST_SIZE + 1, TINY_SYNTHETIC)


def test_noise_filters_match_only_the_named_messages():
    sent = [
        ("`torch.jit.trace` is deprecated. Please switch to `torch.compile`.", FutureWarning),
        ("`torch.jit.trace_method` is deprecated.", FutureWarning),
        ("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning),
        ("`torch.jit.trace` is deprecated.", UserWarning),  # another category is not ours to hide
        ("some other deprecation", FutureWarning),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filter_known_noise()
        for message, category in sent:
            warnings.warn(message, category, stacklevel=1)
    assert [str(w.message) for w in caught] == ["`torch.jit.trace` is deprecated.", "some other deprecation"]
    record = logging.LogRecord("pytorch_lightning", logging.INFO, __file__, 1, "💡 Tip: For seamless cloud x", (), None)
    assert not KnownNoise().filter(record)
    record.msg = "GPU available: False, used: False"
    assert KnownNoise().filter(record)
