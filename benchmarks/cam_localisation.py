"""Where does an ImageNet network's CAM fall on the synthetic birds: on the parts, the body, or the clutter?

    python benchmarks/cam_localisation.py --json cam_localisation.json
    python benchmarks/cam_localisation.py --ckpt outputs/.../last.ckpt --json after.json   # a fine-tuned model

The paper-regime benchmark's goal for label noise is a CAM that sits on the class-defining
parts. When it does not, this script separates the candidate causes on the same images, with no
training: the map's resolution (crop size x output stride), and what the map fires on instead —
the bird's body (object-level features) or the part-like distractors in the background
(clutter). For each setting it reports, as multiples of each region's area share (1x = a
uniform map):

- ``parts``: the CAM mass on the head mark and wing patch (what the labels should follow);
- ``body``: on the bird's body, parts included (an object detector scores high here);
- ``distractors``: on the part-like shapes and textures off the body;
- ``parts_in_body``: the parts' share of the CAM mass that lands on the body, over their share
  of the body's area (1x: inside the bird the map does not prefer the parts);
- ``oracle``: a perfect part detector read out through the same map size (``oracle_part_share``).

Without ``--ckpt`` the map is the class-agnostic one of EfficientNet-Lite0's ImageNet backbone
(the channel mean of its last map, as ``cam_quality`` defines it). With ``--ckpt`` it is the
fine-tuned model's target-class CAM, at the checkpoint's own crop and stride.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import Tensor

from fgvc_mix.data.synthetic import SyntheticFGVC
from fgvc_mix.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from fgvc_mix.evaluation.cam_quality import oracle_part_share
from fgvc_mix.evaluation.checkpoints import load_checkpoint
from fgvc_mix.mixing import class_activation_maps
from fgvc_mix.models import build_classifier

SETTINGS = ((128, 32), (128, 16), (256, 32), (256, 16), (448, 32))  # (crop, output stride): maps 4, 8, 8, 16, 14


def imagenet_normalised(images: Tensor) -> Tensor:
    """[0, 1] images with the ImageNet statistics every datamodule applies."""
    return (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def rendered(num_images: int, size: int, seed: int) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Test images of the paper-regime data (its seed) drawn at ``size``: images, labels, region masks."""
    data = SyntheticFGVC("test", num_samples=800, num_classes=16, image_size=size, seed=seed)
    samples = [data.render(i) for i in range(num_images)]
    images = torch.stack([s.image for s in samples])
    regions = {
        "parts": torch.stack([s.part_mask for s in samples]),
        "body": torch.stack([s.body_mask for s in samples]),
        "distractors": torch.stack([s.distractor_mask for s in samples]),
    }
    return images, torch.tensor([s.label for s in samples]), regions


def shares(cams: Tensor, regions: dict[str, Tensor], map_size: tuple[int, int]) -> dict[str, float]:
    """Each region's CAM mass over its area share (means over images), and the parts' oracle at ``map_size``."""
    result = {}
    for name, mask in regions.items():
        mass = (cams * mask).sum(dim=(1, 2)).mean()
        result[name] = float(mass / mask.float().mean())
    parts, body = regions["parts"], regions["body"]
    in_body = (cams * parts).sum(dim=(1, 2)) / (cams * body).sum(dim=(1, 2))
    area_in_body = parts.sum(dim=(1, 2)).float() / body.sum(dim=(1, 2)).float()
    result["parts_in_body"] = float(in_body.mean() / area_in_body.mean())
    result["oracle"] = oracle_part_share(parts, map_size) / float(parts.float().mean())
    result["map"] = list(map_size)
    return result


@torch.no_grad()
def imagenet_agnostic(num_images: int, seed: int) -> dict[str, dict[str, float]]:
    results = {}
    for size, stride in SETTINGS:
        images, _, regions = rendered(num_images, size, seed)
        model = build_classifier("efficientnet_lite0", 16, pretrained=True, backbone_options={"output_stride": stride})
        features = torch.cat([model.eval().backbone(chunk) for chunk in imagenet_normalised(images).split(32)])
        equal = torch.ones(1, features.shape[1])
        cams = class_activation_maps(features, equal, None, torch.zeros(len(images), dtype=torch.long), (size, size))
        results[f"{size}px_stride{stride}"] = shares(cams, regions, tuple(features.shape[-2:]))
        print(f"{size} px, stride {stride}: {results[f'{size}px_stride{stride}']}", flush=True)
    return results


@torch.no_grad()
def fine_tuned(ckpt_path: Path, num_images: int, seed: int) -> dict[str, dict[str, float]]:
    module, datamodule = load_checkpoint(ckpt_path)
    size = datamodule.hparams.image_size
    images, labels, regions = rendered(num_images, size, seed)
    batches = imagenet_normalised(images).split(32)
    features = torch.cat([module.model.forward_features(module.in_model_layout(x)) for x in batches])
    head = module.model.head
    cams = class_activation_maps(features.float(), head.weight, head.bias, labels, (size, size))
    result = shares(cams, regions, tuple(features.shape[-2:]))
    print(f"{ckpt_path}: {result}", flush=True)
    return {str(ckpt_path): result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=128, help="test images scored")
    parser.add_argument("--seed", type=int, default=0, help="the data seed (the paper-regime runs' seed)")
    parser.add_argument("--ckpt", type=Path, default=None, help="a fine-tuned checkpoint instead of ImageNet's map")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = fine_tuned(args.ckpt, args.images, args.seed) if args.ckpt else imagenet_agnostic(args.images, args.seed)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
