"""FMix (Harris et al. 2020, arXiv:2002.12047): masks cut from low-frequency Fourier noise.

A random image whose spectrum decays as ``1 / f ** decay_power`` is thresholded at its
top-``lam`` quantile: the image keeps those pixels and shows its partner in the rest, so
the partner's region is a few smooth blobs of any shape rather than one box. Labels are
weighted by the mask's share of the pixels, or (``labels="cam"``) by SnapMix's rule:
the CAM mass under the mask.

The masks are drawn on the generator's device (the CPU): the noise, its inverse FFT and
the ranking all run there, and the boolean masks reach the batch's device in the one
non-blocking copy that carries the partners.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from fgvc_mix.errors import UserError
from fgvc_mix.mixing.batch import MixedBatch
from fgvc_mix.mixing.boxes import random_partner, sample_beta, to_device
from fgvc_mix.mixing.cam_labels import labels_cam_forward, mask_weights
from fgvc_mix.mixing.mixers import Mixer, _check_positive


@functools.lru_cache(maxsize=8)
def _spectrum_scale(height: int, width: int, decay_power: float) -> Tensor:
    """``1 / max(f, 1 / max(H, W)) ** decay_power`` over the rFFT bins, on the CPU (cached: it is
    a third of a batch-mode draw's time and depends on the image size only)."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :]
    return (fx * fx + fy * fy).sqrt().clamp_min(1.0 / max(height, width)) ** -decay_power


def low_frequency_noise(
    count: int, height: int, width: int, decay_power: float, generator: torch.Generator | None
) -> Tensor:
    """``count`` real (H, W) images whose Fourier coefficients are complex Gaussians scaled by
    ``1 / max(f, 1 / max(H, W)) ** decay_power`` (the authors' ``make_low_freq_image``, float64)."""
    device = generator.device if generator is not None else torch.device("cpu")
    parts = torch.randn(count, 2, height, width // 2 + 1, generator=generator, dtype=torch.float64, device=device)
    spectrum = torch.complex(parts[:, 0], parts[:, 1]) * _spectrum_scale(height, width, decay_power).to(device)
    return torch.fft.irfftn(spectrum, s=(height, width), dim=(-2, -1))


def fmix_masks(
    batch_size: int,
    height: int,
    width: int,
    alpha: float,
    decay_power: float,
    per_sample: bool,
    generator: torch.Generator | None,
) -> Tensor:
    """Boolean partner masks (N, H, W), N = B with ``per_sample`` else 1, true where the partner shows.

    The image keeps the ``ceil`` or ``floor`` (a fair coin, as the authors) of ``lam * H * W``
    pixels of highest noise, ``lam ~ Beta(alpha, alpha)``; a mask with no true pixel means
    no mixing for that image.
    """
    count = batch_size if per_sample else 1
    lam = sample_beta(alpha, (count,), generator)
    noise = low_frequency_noise(count, height, width, decay_power, generator).reshape(count, -1)
    round_up = torch.rand(count, generator=generator, dtype=torch.float64, device=lam.device) > 0.5
    pixels = height * width
    kept = torch.where(round_up, (lam * pixels).ceil(), (lam * pixels).floor()).long()[:, None]
    lowest_kept = noise.sort(dim=1, descending=True).values.gather(1, (kept - 1).clamp_min(0))
    return ((noise < lowest_kept) | (kept == 0)).reshape(count, height, width)


def fmix(
    images: Tensor,
    targets: Tensor,
    *,
    alpha: float = 1.0,
    decay_power: float = 3.0,
    per_sample: bool = False,
    cams: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> MixedBatch:
    """Mix a batch with FMix; with ``cams`` (normalised, B x H x W) the labels weigh CAM mass under the mask.

    Area labels: ``lam_b`` is the mask's share of the pixels, ``lam_a = 1 - lam_b``.
    ``box_a``/``box_b`` are ``None``: the partner's region is not a box.
    """
    batch_size, _, height, width = images.shape
    host_masks = fmix_masks(batch_size, height, width, alpha, decay_power, per_sample, generator)
    partner, masks = to_device([random_partner(batch_size, generator), host_masks], images.device)
    masks = masks.expand(batch_size, height, width)
    mixed = torch.where(masks[:, None], images[partner], images)
    if cams is None:
        lam_b = masks.float().mean(dim=(1, 2))
        lam_a = 1.0 - lam_b
    else:
        lam_a, lam_b = mask_weights(cams, partner, masks)
    return MixedBatch(mixed, targets, targets[partner], lam_a, lam_b, partner, mask=masks)


class FMix(Mixer):
    """FMix (authors: alpha 1, decay power 3, every batch mixed); ``labels="cam"`` weighs them by CAM mass
    (``cam_options``: ``CamForward``'s, with ``labels="cam"`` only)."""

    name = "fmix"

    def __init__(
        self,
        prob: float = 1.0,
        alpha: float = 1.0,
        decay_power: float = 3.0,
        labels: str = "area",
        per_sample: bool = False,
        seed: int | None = None,
        **cam_options,
    ):
        super().__init__(prob, per_sample, seed)
        self.cam_forward = labels_cam_forward(labels, cam_options)
        _check_positive("alpha", alpha)
        if not decay_power > 0:
            raise UserError(f"mix.decay_power must be > 0 (spectrum ~ 1 / f ** decay_power), got {decay_power}")
        self.alpha = float(alpha)
        self.decay_power = float(decay_power)
        self.labels = labels

    def mix_batch(self, images: Tensor, targets: Tensor, cams: Tensor | None, generator: torch.Generator) -> MixedBatch:
        return fmix(
            images,
            targets,
            alpha=self.alpha,
            decay_power=self.decay_power,
            per_sample=self.per_sample,
            cams=cams,
            generator=generator,
        )
