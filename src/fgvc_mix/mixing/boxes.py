"""Random boxes, Beta draws, partners and batched pasting, shared by the box and mask mixers.

Boxes are (N, 4) int64 tensors ``[x1, y1, x2, y2)`` in pixels, half-open; x runs
along the width. Boxes, lambdas and partners are drawn on the generator's device (the
CPU), where batch-mode boxes stay as Python ints for slicing; what the device needs of
them travels in one non-blocking copy (``to_device``), so nothing here waits on the
accelerator.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def sample_beta(concentration: float, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    """Draws from Beta(c, c) in float64 as X / (X + Y) with X, Y ~ Gamma(c).

    ``torch.distributions.Beta`` cannot take a generator; the mixers need their own
    so that ranks and runs draw reproducibly without touching the global RNG.
    """
    device = generator.device if generator is not None else torch.device("cpu")
    c = torch.full(shape, float(concentration), dtype=torch.float64, device=device)
    x = torch._standard_gamma(c, generator=generator)
    y = torch._standard_gamma(c, generator=generator)
    total = x + y
    return torch.where(total > 0, x / torch.where(total > 0, total, 1.0), 0.5)


def random_boxes(lam: Tensor, height: int, width: int, generator: torch.Generator | None) -> Tensor:
    """The authors' ``rand_bbox``: side ``int(W * sqrt(1 - lam))`` by ``int(H * sqrt(1 - lam))``
    centred on a uniform pixel, each half-side ``cut // 2``, clipped to the image.

    As in the authors' (and timm's) code the box extends ``cut // 2`` on both sides
    of the centre, so an odd side loses one pixel, and clipping shrinks boxes near
    the border; callers that weight by area must use the clipped area.
    """
    cut_ratio = torch.sqrt(1.0 - lam.double())
    cut_w = (width * cut_ratio).long()
    cut_h = (height * cut_ratio).long()
    cx = torch.randint(width, lam.shape, generator=generator, device=lam.device)
    cy = torch.randint(height, lam.shape, generator=generator, device=lam.device)
    return centred_boxes(cx, cy, cut_w, cut_h, height, width)


def centred_boxes(cx: Tensor, cy: Tensor, cut_w: Tensor, cut_h: Tensor, height: int, width: int) -> Tensor:
    """(N, 4) boxes reaching ``cut // 2`` on each side of (cx, cy), clipped to the image (``rand_bbox``'s rule)."""
    return torch.stack(
        [
            (cx - cut_w // 2).clamp(0, width),
            (cy - cut_h // 2).clamp(0, height),
            (cx + cut_w // 2).clamp(0, width),
            (cy + cut_h // 2).clamp(0, height),
        ],
        dim=1,
    )


def draw_boxes(
    batch_size: int, height: int, width: int, concentration: float, per_sample: bool, generator: torch.Generator | None
) -> Tensor:
    """One box per image (or one shared by the batch) from a fresh Beta(c, c) lambda, shape (B, 4)."""
    lam = sample_beta(concentration, (batch_size if per_sample else 1,), generator)
    return random_boxes(lam, height, width, generator).expand(batch_size, 4)


def random_partner(batch_size: int, generator: torch.Generator | None) -> Tensor:
    """Each image's partner from a random permutation, drawn on the generator's device (the mixers
    move it to the images' device with their other draws, in one copy: ``to_device``)."""
    draw_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randperm(batch_size, generator=generator, device=draw_device)


STAGING_ALIGNMENT = 16  # bytes: every dtype's element size divides it, so each packed slice can be viewed back


def to_device(tensors: Sequence[Tensor], device: torch.device | str) -> list[Tensor]:
    """``tensors`` on ``device``, the host ones in one non-blocking copy, so host draws never stall the stream.

    A plain ``.to(device)`` of each would be one pageable, synchronising copy apiece. The
    host tensors are packed byte-wise into one staging buffer (pinned on CUDA), copied once
    asynchronously and viewed back as their own dtypes and shapes: views of one buffer.
    Tensors already on ``device`` are returned as they are.
    """
    device = torch.device(device)
    result = list(tensors)
    if device.type == "cpu":  # device values to the host: a synchronisation that no caller here makes
        return [tensor.to(device) for tensor in tensors]
    for index, tensor in enumerate(tensors):  # on another accelerator: device to device
        if tensor.device.type != "cpu" and not _on(tensor, device):
            result[index] = tensor.to(device, non_blocking=True)
    host = [index for index, tensor in enumerate(tensors) if tensor.device.type == "cpu"]
    if not host:
        return result
    chunks = [tensors[index].reshape(-1).view(torch.uint8) for index in host]
    offsets = [0]
    for chunk in chunks:
        offsets.append(offsets[-1] + -(-chunk.numel() // STAGING_ALIGNMENT) * STAGING_ALIGNMENT)
    staging = torch.empty(offsets[-1], dtype=torch.uint8, pin_memory=device.type == "cuda")
    for chunk, offset in zip(chunks, offsets, strict=False):
        staging[offset : offset + chunk.numel()].copy_(chunk)
    packed = staging.to(device, non_blocking=True)
    for index, chunk, offset in zip(host, chunks, offsets, strict=False):
        source = tensors[index]
        result[index] = packed[offset : offset + chunk.numel()].view(source.dtype).view(source.shape)
    return result


def _on(tensor: Tensor, device: torch.device) -> bool:
    """``tensor`` is on ``device``; ``cuda`` without an index means any CUDA device (the caller's current one)."""
    return tensor.device.type == device.type and device.index in (None, tensor.device.index)


def box_areas(boxes: Tensor) -> Tensor:
    """Pixel areas of (N, 4) boxes; an empty box has area zero."""
    return (boxes[:, 2] - boxes[:, 0]).clamp_min(0) * (boxes[:, 3] - boxes[:, 1]).clamp_min(0)


def box_masks(boxes: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Row (N, H) and column (N, W) indicator masks whose outer product is each box."""
    rows = torch.arange(height, device=boxes.device)
    cols = torch.arange(width, device=boxes.device)
    row_in = (rows >= boxes[:, 1:2]) & (rows < boxes[:, 3:4])
    col_in = (cols >= boxes[:, 0:1]) & (cols < boxes[:, 2:3])
    return row_in, col_in


def _source_coordinates(length: Tensor, start_a: Tensor, start_b: Tensor, length_b: Tensor, size: int) -> Tensor:
    """Pixel coordinate in the partner's box for every output pixel along one axis.

    ``F.interpolate(..., align_corners=True)`` maps output index u of an n-long
    box onto ``u * (m - 1) / (n - 1)`` of the m-long source box (0 when n == 1).
    """
    positions = torch.arange(size, device=length.device, dtype=torch.float64)
    scale = torch.where(length > 1, (length_b - 1).double() / (length - 1).clamp_min(1).double(), 0.0)
    return start_b[:, None].double() + (positions[None] - start_a[:, None].double()) * scale[:, None]


def paste(images: Tensor, partner: Tensor, box_a: Tensor, box_b: Tensor) -> Tensor:
    """Image i receives ``images[partner[i]]``'s ``box_b[i]`` resized bilinearly
    (align_corners=True) to fill its ``box_a[i]``; outside ``box_a[i]`` it is unchanged.
    A pair where either box is empty is left unchanged.

    Boxes shared by the whole batch and held on the host (batch mode, as the mixers
    draw them): one slice of the partners resized with ``F.interpolate``, the authors'
    way, a quarter of the general path's work. The general path (per-image boxes of any
    sizes, or boxes on the device) builds every patch with one ``grid_sample`` over
    per-image sampling grids: no Python loop over the batch, no device synchronisation.
    """
    if _shared_host_boxes(box_a, box_b):
        (partner,) = to_device([partner], images.device)
        return _paste_shared_boxes(images, partner, box_a[0].tolist(), box_b[0].tolist())
    _, _, height, width = images.shape
    box_a, box_b, partner = to_device([box_a, box_b, partner], images.device)
    width_a, height_a = box_a[:, 2] - box_a[:, 0], box_a[:, 3] - box_a[:, 1]
    width_b, height_b = box_b[:, 2] - box_b[:, 0], box_b[:, 3] - box_b[:, 1]
    active = (width_a > 0) & (height_a > 0) & (width_b > 0) & (height_b > 0)

    source_x = _source_coordinates(width_a, box_a[:, 0], box_b[:, 0], width_b, width)
    source_y = _source_coordinates(height_a, box_a[:, 1], box_b[:, 1], height_b, height)
    grid_x = source_x * (2.0 / max(width - 1, 1)) - 1.0  # grid_sample's align_corners=True units
    grid_y = source_y * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack(torch.broadcast_tensors(grid_x[:, None, :], grid_y[:, :, None]), dim=-1)
    sampled = F.grid_sample(
        images[partner], grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=True
    )
    row_in, col_in = box_masks(box_a, height, width)
    inside = row_in[:, :, None] & col_in[:, None, :] & active[:, None, None]
    mixed = torch.where(inside[:, None], sampled, images)
    return mixed.contiguous(memory_format=torch.channels_last) if _is_channels_last(images) else mixed


def _shared_host_boxes(box_a: Tensor, box_b: Tensor) -> bool:
    """Every image has the same two boxes, readable without a device synchronisation."""
    return (
        box_a.device.type == "cpu"
        and box_b.device.type == "cpu"
        and box_a.shape[0] > 0
        and torch.equal(box_a, box_a[:1].expand_as(box_a))  # a host comparison, no tensor -> bool item()
        and torch.equal(box_b, box_b[:1].expand_as(box_b))
    )


def _paste_shared_boxes(images: Tensor, partner: Tensor, box_a: list[int], box_b: list[int]) -> Tensor:
    """``paste`` for one pair of boxes shared by the batch: the authors' slice + ``F.interpolate``.

    Boxes of equal size (CutMix's, always) copy the partner's pixels exactly, with no resampling.
    """
    xa1, ya1, xa2, ya2 = box_a
    xb1, yb1, xb2, yb2 = box_b
    mixed = images.clone()
    if min(xa2 - xa1, ya2 - ya1, xb2 - xb1, yb2 - yb1) > 0:
        patch = images[partner, :, yb1:yb2, xb1:xb2]
        size = (ya2 - ya1, xa2 - xa1)
        if patch.shape[-2:] != size:
            patch = F.interpolate(patch, size=size, mode="bilinear", align_corners=True)
        mixed[:, :, ya1:ya2, xa1:xa2] = patch
    return mixed


def _is_channels_last(images: Tensor) -> bool:
    """NHWC and not also NCHW (a tensor with one channel or 1x1 pixels is both)."""
    return images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
