"""Label noise of a model: how far each mixing rule's label weights are from what the mixed image shows.

SnapMix (Huang, Wang & Tao, AAAI 2021, arXiv:2012.04846) claims that CutMix's
area-based label weights are noisy on fine-grained data, where a small part decides
the class, and that weights read off class activation maps are not. The synthetic
data knows where the class-defining parts are (``SyntheticFGVC.sample_with_mask``),
so the claim can be measured; on the real datasets their own keypoints and object boxes
stand in for the masks (``fgvc_mix.data.truth`` defines that truth and its limits). The
ground-truth semantic share of a source in a mix is

* ``share_a[i]``: the fraction of image i's part pixels outside ``box_a[i]`` (what survives);
* ``share_b[i]``: the fraction of the partner's part pixels inside ``box_b[i]`` (what is
  pasted in; SnapMix resizes that region into ``box_a[i]``, which keeps the fraction up
  to interpolation; for CutMix ``box_b == box_a``).

That is SnapMix's own rule with a perfect CAM, the part mask divided by its pixel
count, so ``semantic_shares`` is ``snapmix_weights`` on normalised masks. For the
same partners and boxes (drawn with SnapMix's geometry: two independent Beta(5, 5)
boxes per image) the meter scores CutMix's rule (box areas) and SnapMix's rule (CAM
mass, the raw weights of ``same_label="keep"``) against the shares: mean absolute
error over both weights and Pearson correlation. Pairs whose two images share a label
are left out and counted: for them the two weights name one class and neither rule's
split between them matters to the loss.

CAMs come from the model in eval mode (BatchNorm running statistics, whatever
``mix.cam_bn`` says): the meter measures the model, so a CAM must not depend on which
other images share its forward pass, and the result must not depend on the chunk size.

``cam_variants`` score the opt-in cheaper CAM forwards (``mix.cam_resolution``,
``mix.cam_dtype``) on the same pairs, next to the exact CAMs' row: what each saving
costs in label quality.

The library of the label-noise meter: ``python -m fgvc_mix.label_noise`` (a checkpoint) and
the ``evaluation.dashboards.LabelNoiseMeter`` callback (during training) call it; the scoring itself is
pure tensor code in ``mixing.label_noise``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from fgvc_mix.data.truth import truth_map
from fgvc_mix.errors import UserError
from fgvc_mix.evaluation.checkpoints import load_checkpoint
from fgvc_mix.mixing.cam_forward import CamForward
from fgvc_mix.mixing.label_noise import LabelNoise, label_noise
from fgvc_mix.mixing.snapmix import draw_snapmix_pairs
from fgvc_mix.training.module import FGVCModule

log = logging.getLogger(__name__)

SNAPMIX_BETA = 5.0
"""The paper's Beta(5, 5) concentration of each box's lambda."""
CAM_FORWARD_OPTIONS = ("cam_resolution", "cam_scale", "cam_dtype")
"""A variant's options: ``CamForward``'s, and ``cam_scale``, its ``cam_resolution`` as a share of the images' side."""


def draw_pairs(
    batch_size: int, height: int, width: int, *, beta: float = SNAPMIX_BETA, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(partner, box_a, box_b)`` with SnapMix's per-image geometry and draw order (``draw_snapmix_pairs``)."""
    return draw_snapmix_pairs(batch_size, height, width, beta, True, generator)


def variant_cam_forwards(cam_variants: dict[str, dict[str, Any]] | None, side: int) -> dict[str, CamForward]:
    """Each ``cam_variants`` row's eval-mode CAM forward, checked as the mix config's options are.

    ``cam_scale`` sizes a downscaled forward from the images' shorter ``side``, so one config
    (``half_res``: 0.5) means half resolution on 64-px synthetic birds and on 448-px crops alike.
    """
    forwards = {}
    for name, options in (cam_variants or {}).items():
        unknown = sorted(set(options) - set(CAM_FORWARD_OPTIONS))
        if unknown:
            raise UserError(
                f"cam_variants.{name}: {unknown} are not CAM forward options; each variant sets {CAM_FORWARD_OPTIONS}"
            )
        options = dict(options)
        scale = options.pop("cam_scale", None)
        if scale is not None:
            if not 0 < scale <= 1 or "cam_resolution" in options:
                raise UserError(
                    f"cam_variants.{name}.cam_scale={scale}: set a share of the images' side ({side} px) in (0, 1], "
                    "or cam_resolution in pixels, not both"
                )
            options["cam_resolution"] = max(1, round(scale * side))
        forwards[name] = CamForward(cam_bn="eval", **options)
    return forwards


@torch.no_grad()
def measure(
    module: FGVCModule,
    images: Tensor,
    masks: Tensor,
    targets: Tensor,
    *,
    beta: float = SNAPMIX_BETA,
    seed: int = 0,
    chunk_size: int = 128,
    cam_variants: dict[str, dict[str, Any]] | None = None,
) -> LabelNoise:
    """Label noise of ``module``'s CAMs (eval mode) on pairs of ``images`` drawn from ``seed``.

    The ``snapmix`` row uses the exact CAM forward (full resolution, the caller's precision),
    whatever ``mix.cam_resolution`` / ``mix.cam_dtype`` the module trained with.
    ``cam_variants`` maps a row name to CAM forward options (e.g. ``{"cam_resolution": 32}`` or
    ``{"cam_scale": 0.5}``); each is scored on the same pairs next to the exact CAMs.
    """

    def cams(cam_forward: CamForward) -> Tensor:
        return torch.cat(
            [
                cam_forward(module.model, x.to(module.device), y.to(module.device)).cpu()
                for x, y in zip(images.split(chunk_size), targets.split(chunk_size), strict=True)
            ]
        )

    variants = variant_cam_forwards(cam_variants, min(images.shape[-2:]))
    exact = cams(CamForward(cam_bn="eval"))
    variant_cams = {name: cams(cam_forward) for name, cam_forward in variants.items()}
    generator = torch.Generator().manual_seed(seed)
    partner, box_a, box_b = draw_pairs(len(targets), *images.shape[-2:], beta=beta, generator=generator)
    return label_noise(exact, masks, targets, partner, box_a, box_b, variant_cams)


def part_mask_source(dataset: Dataset) -> tuple[Any, list[int]] | None:
    """The dataset that renders part masks under ``dataset`` (through any ``Subset``s) and the
    indices into it that ``dataset`` covers; ``None`` when it has no part masks (real datasets)."""
    return _source(dataset, "sample_with_mask")


def truth_source(dataset: Dataset) -> tuple[Any, list[int]] | None:
    """Like ``part_mask_source``, for any dataset of the truth protocol (``data.truth``): the synthetic
    birds and every real reader; ``None`` for a dataset outside it."""
    return _source(dataset, "sample_with_truth")


def _source(dataset: Dataset, method: str) -> tuple[Any, list[int]] | None:
    indices = list(range(len(dataset)))
    while isinstance(dataset, Subset):
        indices = [int(dataset.indices[i]) for i in indices]
        dataset = dataset.dataset
    return (dataset, indices) if hasattr(dataset, method) else None


def masked_samples(
    dataset: Dataset, num_samples: int, seed: int = 0, truth: str | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(images, targets, truth maps)`` of ``num_samples`` images of ``dataset`` chosen with ``seed``.

    ``truth`` is a kind of ``data.truth.TRUTH_KINDS`` (``None``: the dataset's first, parts
    where it has them). ``sample_with_truth`` returns the untransformed image and its truth
    units; the dataset's transform is applied to both together (a ``tv_tensors.Mask`` follows
    resize, crop and flip, and normalisation leaves it alone), under a forked RNG seeded with
    ``seed``, so the same call gives the same samples and training's RNG is untouched. The
    units then fold into one map (``data.truth.truth_map``): the synthetic part masks stay bool,
    as they always were; where any image has several units, every map is float and sums to one.
    An image whose crop keeps no truth is passed over for the next one.
    """
    source = truth_source(dataset)
    if source is None:
        raise UserError(
            f"{type(dataset).__name__} has no truth to score labels against: the label-noise meter needs "
            "dataset=synthetic (part masks) or a reader with annotation files (cub, nabirds: parts and boxes; "
            "cars, aircraft, dogs: boxes)"
        )
    base, indices = source
    kind = truth or next(iter(base.truth_kinds()), "box")
    base.check_truth(kind)
    if not 1 <= num_samples <= len(indices):
        raise UserError(f"num_pairs={num_samples} must be between 1 and the split's {len(indices)} images")
    chosen = torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed))
    images, targets, maps, passed = [], [], [], 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for position in chosen.tolist():
            image, label, units = base.sample_with_truth(indices[position], kind)
            if base.transform is not None:
                image, units = base.transform(image, units)
            truth_pixels = truth_map(units)
            if truth_pixels is None:
                passed += 1
                continue
            images.append(torch.as_tensor(image))
            targets.append(label)
            maps.append(truth_pixels)
            if len(images) == num_samples:
                break
    if passed:
        log.warning("%d images had no truth=%s in their crop and were passed over", passed, kind)
    if not images:
        raise UserError(f"none of the {len(indices)} images of the split has truth={kind} inside its crop")
    if any(m.dtype != torch.bool for m in maps):  # truth of several units: every map sums to one
        maps = [m.float() / m.float().sum() for m in maps]
    return torch.stack(images), torch.tensor(targets), torch.stack(maps)


def checkpoint_label_noise(
    ckpt_path: str | Path,
    num_pairs: int = 512,
    seed: int = 0,
    beta: float = SNAPMIX_BETA,
    cam_variants: dict[str, dict[str, Any]] | None = None,
    truth: str | None = None,
    root: str | Path | None = None,
) -> LabelNoise:
    """Label noise of a checkpoint's CAMs on ``num_pairs`` images of its test split, against
    ``truth`` (``None``: the dataset's first kind), exact CAMs and each of ``cam_variants``.

    ``root`` moves a real dataset (as ``evaluate``'s ``dataset.root``); its images are read
    and transformed on the CPU whatever ``dataset.decode`` the run trained with.
    """
    module, datamodule = load_checkpoint(ckpt_path, {"root": None if root is None else str(root), "decode": "cpu"})
    datamodule.setup("test")
    images, targets, masks = masked_samples(datamodule.datasets["test"], num_pairs, seed, truth)
    return measure(module, images, masks, targets, beta=beta, seed=seed, cam_variants=cam_variants)
