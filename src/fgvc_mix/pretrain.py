"""Pretrain a backbone on the generic synthetic task, once: ``python -m fgvc_mix.pretrain [key=value ...]``.

The CPU stand-in for ImageNet weights (``fgvc_mix.data.synthetic_pretrain``): it trains
torchvision's architecture at ``model.width`` channels, tests it on held-out images, and
writes the state dict (torchvision's keys, without the pretraining ``fc``) where
``model.weights_path`` loads it. Like torchvision's downloaded weights, the file is
cached: under ``$FGVC_MIX_HOME`` (default ``~/.cache/fgvc_mix``), in ``pretrained/``,
named by the architecture and a hash of the settings that change the weights, so a
second run with the same settings returns the cached file at once.

    python -m fgvc_mix.pretrain                    # prints the weights' path
    python -m fgvc_mix.train model=resnet18 model.backbone_options.width=16 model.weights_path=<that path> ...
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import DataLoader

from fgvc_mix.data.synthetic_pretrain import SyntheticObjects
from fgvc_mix.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from fgvc_mix.errors import UserError
from fgvc_mix.models.backbones import RESNET_LAYOUTS, NarrowResNet
from fgvc_mix.training.config import CONFIG_PATH, one_line_user_errors

log = logging.getLogger(__name__)
FORMAT_VERSION = 1  # bump when the task or the loop changes what the same settings train
HASHED_KEYS = ("model", "data", "optim", "seed")  # the settings that change the weights (not the device)
# Options added after weights were cached: left out of the hash at these values (today's behaviour), so the
# cached files keep their names.
UNHASHED_DEFAULTS = {("data", "scene"): "objects", ("data", "parts_radius"): None}


def cache_home() -> Path:
    """``$FGVC_MIX_HOME``, else ``~/.cache/fgvc_mix`` (as ``$TORCH_HOME`` for torchvision's weights)."""
    return Path(os.environ.get("FGVC_MIX_HOME") or Path.home() / ".cache" / "fgvc_mix")


def weights_file(cfg: DictConfig) -> Path:
    """Where the weights of these settings live: ``<cache>/pretrained/<name>_w<width>_<hash>.pt``."""
    settings = {
        key: OmegaConf.to_container(cfg[key], resolve=True) if key != "seed" else cfg.seed for key in HASHED_KEYS
    }
    for (section, key), default in UNHASHED_DEFAULTS.items():
        if settings[section].get(key) == default:
            settings[section].pop(key, None)
    text = json.dumps({"version": FORMAT_VERSION, **settings}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    root = Path(cfg.cache_dir) if cfg.get("cache_dir") else cache_home()
    return root / "pretrained" / f"{cfg.model.name}_w{cfg.model.width}_{digest}.pt"


def _render(dataset: SyntheticObjects, num_workers: int) -> tuple[Tensor, Tensor]:
    """Every image of ``dataset`` as uint8 (drawn once, in worker processes), and the labels."""
    loader = DataLoader(dataset, batch_size=64, num_workers=num_workers)
    images, labels = zip(*((x.mul(255).round().to(torch.uint8), y) for x, y in loader), strict=True)
    return torch.cat(images), torch.cat(labels)


def _normalise(images: Tensor, device: torch.device) -> Tensor:
    """uint8 images -> ImageNet-normalised float32 on ``device``, channels_last (as the datamodule feeds training)."""
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    batch = (images.to(device).float() / 255 - mean) / std
    return batch.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def _accuracy(net: torch.nn.Module, images: Tensor, labels: Tensor, batch_size: int, device: torch.device) -> float:
    net.eval()
    correct = sum(
        int((net(_normalise(x, device)).argmax(1).cpu() == y).sum())
        for x, y in zip(images.split(batch_size), labels.split(batch_size), strict=True)
    )
    return correct / len(labels)


def train_backbone(cfg: DictConfig) -> tuple[NarrowResNet, dict[str, Any]]:
    """Train ``cfg.model`` on the synthetic objects (AdamW, cosine, random flips); returns it and its report."""
    if cfg.model.name not in RESNET_LAYOUTS:
        raise UserError(f"model.name={cfg.model.name!r}: pretraining supports {sorted(RESNET_LAYOUTS)}")
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    data = cfg.data
    parts_radius = data.get("parts_radius")
    drawing = {
        "radius": tuple(data.radius),
        "content_size": data.content_size,
        "scene": data.get("scene", "objects"),
        "parts_radius": tuple(parts_radius) if parts_radius else None,
    }
    train_set = SyntheticObjects("train", data.train_size, data.image_size, data.seed, data.noise, **drawing)
    train_images, train_labels = _render(train_set, cfg.num_workers)
    test_images, test_labels = _render(
        SyntheticObjects("test", data.test_size, data.image_size, data.seed, data.noise, **drawing), cfg.num_workers
    )
    render_seconds = time.perf_counter() - start
    device = torch.device(cfg.device)
    dilate = cfg.model.get("dilate_last_stage", False)  # +model.dilate_last_stage=true; absent: today's cache key
    num_classes = len(train_set.classes)
    net = NarrowResNet(cfg.model.name, cfg.model.width, num_classes, dilate)
    net = net.to(device, memory_format=torch.channels_last)
    optim = cfg.optim
    optimizer = torch.optim.AdamW(net.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)
    steps_per_epoch = len(train_labels) // optim.batch_size
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, optim.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(optim.epochs):
        net.train()
        order = torch.randperm(len(train_labels), generator=generator)[: steps_per_epoch * optim.batch_size]
        total = 0.0
        for batch in order.view(steps_per_epoch, optim.batch_size):
            images = train_images[batch]
            flip = torch.rand(len(batch), generator=generator) < 0.5
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
            loss = F.cross_entropy(net(_normalise(images, device)), train_labels[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item()
        accuracy = _accuracy(net, test_images, test_labels, 256, device)
        log.info("pretrain epoch %d/%d: train loss %.3f, test accuracy %.3f", epoch + 1, optim.epochs,
                 total / steps_per_epoch, accuracy)  # fmt: skip
    report = {
        "test_acc": accuracy,
        "chance": 1 / num_classes,
        "render_seconds": round(render_seconds, 1),
        "seconds": round(time.perf_counter() - start, 1),
    }
    return net, report


def pretrained_weights(cfg: DictConfig) -> Path:
    """The cached weights of ``cfg``'s settings, pretraining them first if absent (or if ``force``)."""
    path = weights_file(cfg)
    if path.is_file() and not cfg.get("force", False):
        log.info("Reusing pretrained weights %s", path)
        return path
    net, report = train_backbone(cfg)
    state = {key: value.cpu() for key, value in net.state_dict().items() if not key.startswith("fc.")}
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = {key: value for key, value in OmegaConf.to_container(cfg, resolve=True).items() if key != "hydra"}
    path.with_suffix(".json").write_text(json.dumps({"report": report, "settings": settings}, indent=1))
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, path)  # last: a killed run never leaves a truncated or unreported file under the cached name
    log.info("Pretrained %s: test accuracy %.3f in %.0f s -> %s", cfg.model.name, report["test_acc"],
             report["seconds"], path)  # fmt: skip
    return path


def pretraining_report(path: Path) -> dict[str, Any]:
    """The test accuracy and timings written next to the weights."""
    return json.loads(path.with_suffix(".json").read_text())["report"]


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="pretrain")
def main(cfg: DictConfig) -> None:
    with one_line_user_errors():
        path = pretrained_weights(cfg)
    report = pretraining_report(path)
    print(f"Pretrained weights: {path}")
    print(f"  test accuracy {report['test_acc']:.3f} on the pretraining task (chance {report['chance']:.3f})")
    print(f"  use: model={cfg.model.name} model.backbone_options.width={cfg.model.width} model.weights_path={path}")


if __name__ == "__main__":
    main()
