"""Classify images with a checkpoint: ``python -m fgvc_mix.predict ckpt_path=... images=<folder or file> [top_k=5]``.

Images go through the checkpoint's own evaluation transform (resize, centre crop,
normalise, as at test time); each image's top-k class names and probabilities are printed.
An image that cannot be read (empty, truncated, not an image) is listed with its reason and
left out; the command fails only when none could be read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from fgvc_mix.data.decoding import IMAGE_SUFFIXES, load_rgb_image
from fgvc_mix.data.errors import BadImageError
from fgvc_mix.errors import MissingFileError, UserError
from fgvc_mix.evaluation.checkpoints import check_tta, load_checkpoint, predict_probabilities, select_device
from fgvc_mix.training.config import CONFIG_PATH, check_mandatory, one_line_user_errors

log = logging.getLogger(__name__)


def find_images(images: str | Path) -> list[Path]:
    """``images`` itself if it is a file, else the image files under the folder (recursively, sorted)."""
    path = Path(images)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise MissingFileError(f"images={path} does not exist; pass an image file or a folder of images")
    found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not found:
        raise MissingFileError(f"images={path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return found


def predict(
    ckpt_path: str | Path,
    images: str | Path,
    top_k: int = 5,
    tta: str = "none",
    accelerator: str = "auto",
    batch_size: int = 32,
) -> list[tuple[Path, list[tuple[str, float]]]]:
    """For each image, its ``top_k`` (class name, probability) pairs, most likely first."""
    if top_k < 1:
        raise UserError(f"top_k={top_k}: ask for at least one class, e.g. top_k=5")
    check_tta(tta)
    paths = find_images(images)
    device = select_device(accelerator)
    module, datamodule = load_checkpoint(ckpt_path)
    module.to(device)
    transform = datamodule.transform(train=False)
    num_classes = module.hparams.num_classes
    class_names = module.hparams.class_names or [str(i) for i in range(num_classes)]
    results = []
    for start in range(0, len(paths), batch_size):
        chunk, images_read = readable_images(paths[start : start + batch_size], transform)
        if not chunk:
            continue
        batch = torch.stack(images_read).to(device)
        probabilities, indices = predict_probabilities(module, batch, tta).topk(min(top_k, num_classes), dim=1)
        for path, probs, classes in zip(chunk, probabilities.tolist(), indices.tolist(), strict=True):
            results.append((path, [(class_names[c], p) for c, p in zip(classes, probs, strict=True)]))
    if not results:
        raise UserError(f"none of the {len(paths)} image files of images={images} could be read (listed above)")
    if len(results) < len(paths):
        log.warning("%d of %d image files could not be read and were left out", len(paths) - len(results), len(paths))
    return results


def readable_images(paths: list[Path], transform: Callable) -> tuple[list[Path], list[torch.Tensor]]:
    """The paths that decode and their transformed images; each unreadable one is logged with its reason."""
    kept, images = [], []
    for path in paths:
        try:
            images.append(transform(load_rgb_image(path)))
        except BadImageError as error:
            log.warning("Left out %s: %s", path, error.reason)
            continue
        kept.append(path)
    return kept, images


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="predict")
def main(cfg: DictConfig) -> None:
    check_mandatory(cfg)
    with one_line_user_errors():
        results = predict(cfg.ckpt_path, cfg.images, cfg.top_k, cfg.tta, cfg.accelerator, cfg.batch_size)
        for path, top in results:
            print(path)
            for name, probability in top:
                print(f"  {probability:7.2%}  {name}")


if __name__ == "__main__":
    main()
