"""``dataset.decode=gpu`` on the CPU (the device is the CPU here): the same pixels as the CPU path, clear
errors, and a training run through the real configs.

Measured (these tests, torch 2.14 / torchvision 0.29 / Pillow 13 on CPU): the decoded, resized, cropped,
flipped, normalised batches equal the CPU path's exactly (0.00 grey levels mean and max), for RGB,
grey and CMYK JPEGs, both resize modes, train and eval. The bound below (0.5 grey levels mean) leaves
room for other libjpeg builds; the broken variants checked against it differ by 14.8 (the other
resize mode), 24-27 (train flip ignored), 37-38 (not normalised), 40 (BGR), 56-59 (eval flipped).
On CUDA (nvjpeg, and torchvision's float resize) the bound is looser and not yet measured on a GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from helpers import compose_config
from helpers.datasets import lines, write_cub_style
from PIL import Image

from fgvc_mix.data import DatasetError, FGVCDataModule
from fgvc_mix.data.aircraft import FGVCAircraft
from fgvc_mix.data.cub import CUB200
from fgvc_mix.data.device_decode import LAYOUT, EncodedJpegs, collate_encoded, decode_batch
from fgvc_mix.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform, train_transform
from fgvc_mix.train import build

CPU = torch.device("cpu")
MAX_MEAN_GREY_LEVELS = 0.5  # mean |CPU path - device path|, in grey levels of 255
MAX_MEAN_GREY_LEVELS_CUDA = 3.0  # nvjpeg's IDCT/upsampling + the float resize's rounding (<= 1); broken: >= 14.8
SIZE, RESIZE = 24, 28
# Non-square (both orientations) so that the resize modes differ; 6 RGB, then a grey and a CMYK JPEG.
IMAGE_SIZES = [(50, 37), (37, 50), (64, 64), (41, 60), (75, 33), (90, 70), (40, 45), (60, 40)]


def photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Smooth random colour fields plus noise: flipped, channel-swapped or shifted versions differ clearly."""
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    return Image.fromarray(np.clip(smooth + rng.normal(0.0, 6.0, smooth.shape), 0, 255).astype(np.uint8))


@pytest.fixture
def jpeg_root(tmp_path: Path) -> Path:
    """A CUB tree of 8 photo-like JPEGs of different sizes (all train), the last two grey and CMYK."""
    classes = [("1", "001.Black_footed_Albatross"), ("2", "002.Laysan_Albatross")]
    images = [(str(n), f"{classes[n % 2][1]}/img_{n}.jpg", classes[n % 2][0], 1) for n in range(1, 9)]
    images.append(("9", f"{classes[0][1]}/img_9.jpg", "1", 0))  # a test image, so both splits exist
    base = tmp_path / "CUB_200_2011"
    write_cub_style(base, images, classes)
    rng = np.random.default_rng(0)
    for (_, rel, _, _), size in zip(images, [*IMAGE_SIZES, (48, 48)], strict=True):
        image = photo(rng, *size)
        image = image.convert("L") if rel.endswith("img_7.jpg") else image
        image = image.convert("CMYK") if rel.endswith("img_8.jpg") else image
        image.save(base / "images" / rel, quality=90)
    return tmp_path


def grey_levels(images: torch.Tensor) -> torch.Tensor:
    """Normalised images back to [0, 255] RGB."""
    return (images * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]) * 255


def mean_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return (grey_levels(a) - grey_levels(b)).abs().mean().item()


def both_paths(root: Path, resize: str, train: bool) -> tuple[torch.Tensor, torch.Tensor, list]:
    """The CPU pipeline's images and the device path's, image k drawn under torch seed k in both."""
    build_transform = train_transform if train else eval_transform
    cpu = CUB200(root, "train", transform=build_transform(SIZE, RESIZE, resize=resize))
    encoded = EncodedJpegs(CUB200(root, "train"), SIZE, RESIZE, resize, train)
    cpu_images, samples = [], []
    for index in range(len(cpu)):
        torch.manual_seed(index)
        cpu_images.append(cpu[index][0])
        torch.manual_seed(index)
        samples.append(encoded[index])
    batch, _ = collate_encoded(samples)
    return torch.stack(cpu_images), decode_batch(batch, CPU, IMAGENET_MEAN, IMAGENET_STD), samples


@pytest.mark.parametrize("resize", ["shorter", "square"])
def test_eval_path_matches_the_cpu_pipeline_and_broken_ones_do_not(jpeg_root, resize):
    cpu, device, samples = both_paths(jpeg_root, resize, train=False)
    assert device.shape == cpu.shape == (8, 3, SIZE, SIZE) and device.dtype == torch.float32
    assert mean_difference(cpu, device) <= MAX_MEAN_GREY_LEVELS
    other = "square" if resize == "shorter" else "shorter"
    broken = {
        "BGR": device[:, [2, 1, 0]],
        "not normalised": grey_levels(device) / 255,
        f"resize={other}": both_paths(jpeg_root, other, train=False)[1],
        "flipped": device.flip(-1),
    }
    for name, images in broken.items():
        assert mean_difference(cpu, images) > 4 * MAX_MEAN_GREY_LEVELS, name
    # Grey and CMYK JPEGs come out RGB like the CPU path's (grey: three equal channels); the CMYK one is
    # decoded on the host (torchvision's nvjpeg decoder does not enable CMYK), the rest in the device's call.
    assert [int(layout[LAYOUT.index("on_host")]) for _, layout, _, _ in samples] == [0] * 7 + [1]
    assert torch.allclose(grey_levels(device[6])[0], grey_levels(device[6])[2], atol=1e-3)
    assert (grey_levels(cpu[6:]) - grey_levels(device[6:])).abs().mean() <= MAX_MEAN_GREY_LEVELS


@pytest.mark.parametrize("resize", ["shorter", "square"])
def test_train_path_draws_the_cpu_pipelines_crop_and_flip(jpeg_root, resize):
    """One torch seed, one crop and flip: the worker draws them with RandomCrop's and RandomHorizontalFlip's calls."""
    cpu, device, samples = both_paths(jpeg_root, resize, train=True)
    flips = [int(layout[LAYOUT.index("flip")]) for _, layout, _, _ in samples]
    assert 0 < sum(flips) < len(flips)  # both branches taken with these seeds
    assert mean_difference(cpu, device) <= MAX_MEAN_GREY_LEVELS
    unflipped = torch.stack([image.flip(-1) if flip else image for image, flip in zip(device, flips, strict=True)])
    assert mean_difference(cpu, unflipped) > 4 * MAX_MEAN_GREY_LEVELS  # flip ignored: far off


@pytest.mark.skipif(not torch.cuda.is_available(), reason="nvjpeg needs CUDA")
def test_cuda_decode_is_close_to_the_cpu_path_without_host_syncs(jpeg_root):
    cpu, _, samples = both_paths(jpeg_root, "shorter", train=True)
    batch, _ = collate_encoded(samples)
    cuda = torch.device("cuda")
    decode_batch(batch, cuda, IMAGENET_MEAN, IMAGENET_STD)  # first call: nvjpeg set-up, mean/std copied once
    torch.cuda.set_sync_debug_mode("error")
    try:
        images = decode_batch(batch, cuda, IMAGENET_MEAN, IMAGENET_STD)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert images.device.type == "cuda"
    assert mean_difference(cpu, images.cpu()) <= MAX_MEAN_GREY_LEVELS_CUDA


def test_aircraft_banner_is_cut_before_the_resize(tmp_path):
    data = tmp_path / "data"
    lines(data / "variants.txt", ["707-320", "A300B4"])
    lines(data / "images_variant_trainval.txt", ["1 707-320", "2 A300B4"])
    rng = np.random.default_rng(1)
    for name, size in (("1", (60, 45)), ("2", (40, 52))):
        (data / "images").mkdir(exist_ok=True)
        photo(rng, *size).save(data / "images" / f"{name}.jpg", quality=90)
    cpu = FGVCAircraft(data, "train", transform=eval_transform(SIZE, RESIZE, resize="square"))
    samples = [EncodedJpegs(FGVCAircraft(data, "train"), SIZE, RESIZE, "square", train=False)[i] for i in (0, 1)]
    assert [layout[:2].tolist() for _, layout, _, _ in samples] == [[25, 60], [32, 40]]  # 20-px banner cut
    device = decode_batch(collate_encoded(samples)[0], CPU, IMAGENET_MEAN, IMAGENET_STD)
    assert mean_difference(torch.stack([cpu[0][0], cpu[1][0]]), device) <= MAX_MEAN_GREY_LEVELS


def test_unusable_settings_fail_at_setup_with_the_fix(jpeg_root):
    with pytest.raises(DatasetError, match=r"dataset=synthetic is generated in memory: set dataset\.decode=cpu"):
        build(compose_config(["dataset.decode=gpu"], jpeg_root / "run"))  # the demo's config, from the command line
    with pytest.raises(DatasetError, match=r"dataset\.decode='nvjpeg' is not known; choose one of cpu, gpu"):
        FGVCDataModule(name="cub", root=str(jpeg_root), num_classes=2, decode="nvjpeg")
    with pytest.raises(DatasetError, match=r"set dataset\.options\.draft_size=null"):
        EncodedJpegs(CUB200(jpeg_root, "train", draft_size=RESIZE), SIZE, RESIZE, "shorter", train=True)

    encoded = EncodedJpegs(CUB200(jpeg_root, "train"), SIZE, RESIZE, "shorter", train=True)  # all JPEG so far
    png = jpeg_root / "CUB_200_2011" / "images" / "002.Laysan_Albatross" / "img_3.jpg"
    Image.new("RGB", (30, 30)).save(png, format="PNG")  # PNG data behind a .jpg name: the CPU path reads it
    datamodule = FGVCDataModule(name="cub", root=str(jpeg_root), num_classes=2, num_workers=0, decode="gpu")
    message = rf"decode=gpu decodes JPEG only, but 1 of 8 images are not JPEG \(first: {png}\); set dataset\.decode=cpu"
    with pytest.raises(DatasetError, match=message):
        datamodule.setup("fit")
    with pytest.raises(DatasetError, match=r"not JPEG .*set dataset\.decode=cpu"):  # a file changed after setup
        encoded[2]


class BatchSpy(pl.Callback):
    """The batches the module's steps receive, after the datamodule's device decode."""

    def __init__(self) -> None:
        self.batches: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.batches.setdefault("train", batch)

    def on_test_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0) -> None:
        self.batches.setdefault("test", batch)


def test_fast_dev_run_trains_and_tests_with_device_decode(jpeg_root, tmp_path):
    cfg = compose_config(
        [
            "dataset=cub",
            f"dataset.root={jpeg_root}",
            "dataset.num_classes=2",
            f"dataset.image_size={SIZE}",
            f"dataset.resize_size={RESIZE}",
            "dataset.batch_size=4",
            "dataset.num_workers=0",
            "dataset.decode=gpu",
            "model=small_cnn",
            "trainer=debug",
            "logger=[]",
            "callbacks=[]",
        ],
        tmp_path,
    )
    module, datamodule, trainer = build(cfg)
    spy = BatchSpy()
    trainer.callbacks.append(spy)
    trainer.fit(module, datamodule=datamodule)
    assert "test/acc" in trainer.test(module, datamodule=datamodule, verbose=False)[0]
    for stage, count in (("train", 4), ("test", 1)):
        images, targets = spy.batches[stage]
        assert images.shape == (count, 3, SIZE, SIZE) and images.dtype == torch.float32
        assert targets.dtype == torch.int64
        assert -3 < images.min() < 0 < images.max() < 3, stage  # normalised: not raw [0, 255] or [0, 1]
    images, _ = datamodule.to_device(next(iter(datamodule.test_dataloader())), CPU)  # fgvc_mix.evaluate's loop
    assert images.shape == (1, 3, SIZE, SIZE)


def test_data_throughput_benchmark_prints_both_decode_tables():
    """``benchmarks/data_throughput.py --decode cpu,gpu`` at tiny sizes: it must not rot between GPU loans."""
    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    command = [sys.executable, "data_throughput.py", "--decode", "cpu,gpu", "--images", "2", "--repeats", "1"]
    command += ["--warmup", "0", "--sizes", "96x72", "--batch", "2"]
    run = subprocess.run(
        command, cwd=benchmarks, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines() if line.startswith("96x72")]
    assert len(rows) == 2  # the CPU table's row, then the decode=gpu table's
    worker_ratio = float(rows[1][1])
    assert worker_ratio > 1  # reading bytes beats decoding + resizing in the worker
