"""Images per second per data-loading worker: our dataset classes vs torchvision's ImageFolder, and
``dataset.decode=gpu`` (workers read JPEG bytes, the device decodes) vs the CPU decode.

    python benchmarks/data_throughput.py [--images 48] [--repeats 5] [--threads 1] [--sizes 500x375,1200x800]
                                         [--resize shorter|square] [--decode cpu|gpu|cpu,gpu] [--device cpu|cuda]

The SnapMix authors' CUB train pipeline (``train_transform(448, 512, resize="shorter")``, as
``dataset=cub``: shorter side to 512 keeping the aspect ratio, RandomCrop 448, flip,
normalise; ``--resize square`` warps to 512x512 first, their Cars and Aircraft pipeline)
runs in this process on one thread, as in one DataLoader worker, over the same generated
photo-like JPEGs laid out as an official CUB-200-2011 tree: through ``CUB200`` (full
decode, robust RGB), through ``ImageFolder`` on its ``images/`` folder, and through
``CUB200`` with ``draft_size=512`` (reduced-size JPEG decode). Candidates run interleaved;
the ratios are the result, the absolute rates depend on the machine.

``draft`` only pays off when both sides are at least twice ``draft_size`` (PIL keeps every
side >= the requested size, so the resize still has 512 pixels on each side to start from),
so at 500x375 and 1200x800 it decodes at full scale and the ratio is ~1.

``--decode gpu`` times, interleaved with ``ours`` (the CPU decode path), what a loader worker
does with ``dataset.decode=gpu`` (read the file, parse its header, draw crop and flip:
``EncodedJpegs``), and the device side: ``decode_batch`` on batches of ``--batch`` (one
``decode_jpeg`` call, then resize, crop, flip, normalise) on ``--device``; on the CPU it runs
on ``--threads`` threads. The workers' images/s of the two paths is the issue's figure (target:
decode=gpu >= 3x decode=cpu per worker); the device rate is what one device decodes per second.
The last columns compare the device path's pixels with the CPU path's on one batch, same crops
and flips (on CUDA: nvjpeg and a float resize against libjpeg and the uint8 one).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timing import interleaved_medians
from torchvision.datasets import ImageFolder

from fgvc_mix.data.cub import CUB200
from fgvc_mix.data.device_decode import EncodedBatch, EncodedJpegs, collate_encoded, decode_batch
from fgvc_mix.data.transforms import IMAGENET_MEAN, IMAGENET_STD, RESIZE_MODES, train_transform

RESIZE_STEP = {"shorter": "Resize(shorter side 512)", "square": "Resize(512x512)"}
CLASSES = ("001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross", "004.Groove_billed_Ani")


def photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Smooth colour fields plus sensor-like noise: JPEG sizes and decode cost close to real photos."""
    coarse = rng.integers(0, 256, (height // 24 + 2, width // 24 + 2, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    noisy = smooth + rng.normal(0.0, 6.0, smooth.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def write_cub_tree(base: Path, count: int, size: tuple[int, int], seed: int) -> None:
    """An official-format CUB_200_2011 tree of ``count`` JPEGs (all train), sizes within 10% of ``size``."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in range(1, count + 1):
        class_id = (n - 1) % len(CLASSES) + 1
        rel = f"{CLASSES[class_id - 1]}/img_{n:04d}.jpg"
        width, height = (int(s * rng.uniform(0.9, 1.1)) for s in size)
        (base / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        photo(rng, width, height).save(base / "images" / rel, quality=90)
        rows.append((n, rel, class_id))
    (base / "images.txt").write_text("".join(f"{n} {rel}\n" for n, rel, _ in rows))
    (base / "image_class_labels.txt").write_text("".join(f"{n} {c}\n" for n, _, c in rows))
    (base / "train_test_split.txt").write_text("".join(f"{n} 1\n" for n, _, _ in rows))
    (base / "classes.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(CLASSES, 1)))


def read_all(dataset: torch.utils.data.Dataset) -> None:
    for index in range(len(dataset)):
        dataset[index]


def encoded_batches(dataset: EncodedJpegs, batch: int, device: torch.device) -> list[EncodedBatch]:
    """The dataset's samples collated as the loader does (the bytes pinned for CUDA, as the loader pins them)."""
    batches = []
    for start in range(0, len(dataset), batch):
        encoded, _ = collate_encoded([dataset[i] for i in range(start, min(start + batch, len(dataset)))])
        if device.type == "cuda":
            encoded = encoded._replace(data=[data.pin_memory() for data in encoded.data])
        batches.append(encoded)
    return batches


def decode_all(batches: list[EncodedBatch], device: torch.device) -> None:
    for batch in batches:
        decode_batch(batch, device, IMAGENET_MEAN, IMAGENET_STD)


def pixel_difference(cpu: CUB200, encoded: EncodedJpegs, count: int, device: torch.device) -> tuple[float, float]:
    """Mean and max |CPU path - device path| in grey levels (of 255) over ``count`` images, the same crop
    and flip in both (image k drawn under torch seed k): on CUDA, nvjpeg + float resize vs libjpeg + uint8."""
    reference, samples = [], []
    for index in range(count):
        torch.manual_seed(index)
        reference.append(cpu[index][0])
        torch.manual_seed(index)
        samples.append(encoded[index])
    decoded = decode_batch(collate_encoded(samples)[0], device, IMAGENET_MEAN, IMAGENET_STD).cpu()
    difference = (torch.stack(reference) - decoded) * torch.tensor(IMAGENET_STD)[:, None, None] * 255
    return difference.abs().mean().item(), difference.abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48, help="images per size group")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = one DataLoader worker)")
    parser.add_argument("--sizes", default="500x375,1200x800", help="WxH per group (CUB-like, Cars-like)")
    parser.add_argument("--draft-size", type=int, default=512)
    parser.add_argument("--resize", choices=RESIZE_MODES, default="shorter", help="dataset.resize (CUB: shorter)")
    parser.add_argument("--decode", default="cpu", choices=["cpu", "gpu", "cpu,gpu"], help="which table(s)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where decode=gpu decodes")
    parser.add_argument("--batch", type=int, default=32, help="decode=gpu: images per device decode call")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    transform = train_transform(448, 512, resize=args.resize)
    tables = args.decode.split(",")
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        candidates, pixels = {}, {}
        for group, size in enumerate(sizes):
            base = Path(tmp) / f"{size[0]}x{size[1]}" / "CUB_200_2011"
            write_cub_tree(base, args.images, size, seed=group)
            datasets = {"ours": CUB200(base, "train", transform=transform)}
            if "cpu" in tables:
                datasets["ImageFolder"] = ImageFolder(str(base / "images"), transform=transform)
                datasets["draft"] = CUB200(base, "train", transform=transform, draft_size=args.draft_size)
            if "gpu" in tables:
                datasets["gpu-worker"] = EncodedJpegs(CUB200(base, "train"), 448, 512, args.resize, train=True)
                batches = encoded_batches(datasets["gpu-worker"], args.batch, device)
                count = min(args.batch, args.images)
                pixels[size] = pixel_difference(datasets["ours"], datasets["gpu-worker"], count, device)
                candidates[f"{size}:gpu-device"] = lambda batches=batches: decode_all(batches, device)
            assert all(len(dataset) == args.images for dataset in datasets.values())
            for name, dataset in datasets.items():
                candidates[f"{size}:{name}"] = lambda dataset=dataset: read_all(dataset)
        medians, _ = interleaved_medians(candidates, args.repeats, args.warmup, device)

    def rate(size: tuple[int, int], name: str) -> float:
        return args.images / medians[f"{size}:{name}"]

    print(
        f"Train pipeline {RESIZE_STEP[args.resize]} -> RandomCrop(448) -> flip -> normalise, "
        f"{args.images} JPEGs per size, {args.repeats} interleaved repeats, "
        f"{torch.get_num_threads()} thread(s), one process, torch {torch.__version__}"
    )
    if "cpu" in tables:
        draft = f"draft{args.draft_size}/ours"
        print(f"{'size (~WxH)':<12} {'ours/ImageFolder':>17} {draft:>15}   images/s: ours, ImageFolder, draft")
        for size in sizes:
            ours, folder, reduced = (rate(size, name) for name in ("ours", "ImageFolder", "draft"))
            label = f"{size[0]}x{size[1]}"
            rates = f"{ours:.1f}, {folder:.1f}, {reduced:.1f}"
            print(f"{label:<12} {ours / folder:>17.2f} {reduced / ours:>15.2f}   {rates}")
    if "gpu" in tables:
        print(
            "dataset.decode=gpu: worker = read bytes + header + draw crop/flip; device = one decode_jpeg call + "
            f"resize + crop + flip + normalise, batch {args.batch}, on {args.device}"
        )
        print(
            f"{'size (~WxH)':<12} {'worker gpu/cpu':>15}   images/s: worker decode=gpu, worker decode=cpu, device"
            "   |device - CPU path| grey levels: mean, max"
        )
        for size in sizes:
            worker, ours, on_device = (rate(size, name) for name in ("gpu-worker", "ours", "gpu-device"))
            label = f"{size[0]}x{size[1]}"
            mean, largest = pixels[size]
            print(
                f"{label:<12} {worker / ours:>15.2f}   {worker:.1f}, {ours:.1f}, {on_device:.1f}"
                f"   {mean:.3f}, {largest:.1f}"
            )
    print("Ratios are throughput ratios (> 1: the first is faster).")


if __name__ == "__main__":
    main()
