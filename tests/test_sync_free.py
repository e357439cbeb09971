"""The mixing path never makes the host wait for the device.

On CUDA a mixed training step (CAM forward, mixing, forward, loss, backward) runs under
``torch.cuda.set_sync_debug_mode("error")``. Without CUDA the same step runs on the
``meta`` device under a dispatch mode that fails on any read of a device value on the
host (``.item()``, ``.tolist()``, ``bool(tensor)``, ``.cpu()``, data-dependent shapes) and
counts host-to-device copies: boxes, lambdas and partners must travel in one
non-blocking copy per mix. The step's deliberate NaN guard (``torch.isfinite(loss)``
in ``training_step``) is left out: it is one sync on purpose, outside the mixing.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fgvc_mix.mixing import class_activation_maps, cutmix, mixup, paste, snapmix
from fgvc_mix.mixing.boxes import to_device
from fgvc_mix.training.module import FGVCModule

aten = torch.ops.aten
HOST_READS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default}

MODEL = {"_target_": "fgvc_mix.models.build_classifier", "name": "resnet18", "pretrained": False}
OPTIM = {"optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}}
MIXES = {
    "snapmix": {"_target_": "fgvc_mix.mixing.SnapMix"},
    "snapmix_per_sample": {"_target_": "fgvc_mix.mixing.SnapMix", "per_sample": True},
    "snapmix_cam_bn_eval": {"_target_": "fgvc_mix.mixing.SnapMix", "cam_bn": "eval"},
    "snapmix_cam_resolution": {"_target_": "fgvc_mix.mixing.SnapMix", "cam_resolution": 16},
    "cutmix": {"_target_": "fgvc_mix.mixing.CutMix"},
    "cutmix_per_sample": {"_target_": "fgvc_mix.mixing.CutMix", "per_sample": True},
    "mixup": {"_target_": "fgvc_mix.mixing.Mixup", "prob": 1.0},
    "resizemix": {"_target_": "fgvc_mix.mixing.ResizeMix", "prob": 1.0},
    "fmix": {"_target_": "fgvc_mix.mixing.FMix", "prob": 1.0},
    "attentive_cutmix": {"_target_": "fgvc_mix.mixing.AttentiveCutMix", "prob": 1.0},
}


class HostDeviceTraffic(TorchDispatchMode):
    """Fails on host reads of non-CPU tensors; records every copy between the host and a device."""

    def __init__(self) -> None:
        super().__init__()
        self.uploads: list[bool] = []  # one entry per host -> device copy: was it non-blocking?

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in HOST_READS and args[0].device.type != "cpu":
            raise AssertionError(f"{func} reads a {args[0].device.type} tensor on the host")
        if func is aten._to_copy.default and "device" in kwargs:
            self._copy(args[0].device, torch.device(kwargs["device"]), kwargs.get("non_blocking", False))
        if func is aten.copy_.default:
            self._copy(args[1].device, args[0].device, len(args) > 2 and args[2])
        return func(*args, **kwargs)

    def _copy(self, source: torch.device, destination: torch.device, non_blocking: bool) -> None:
        if source.type != "cpu" and destination.type == "cpu":
            raise AssertionError(f"a {source.type} tensor is copied to the host")
        if source.type == "cpu" and destination.type != "cpu":
            self.uploads.append(bool(non_blocking))


def mixed_step(module: FGVCModule, images: torch.Tensor, targets: torch.Tensor) -> None:
    """The training step's own loss (``mixed_loss``: CAMs, mix, forward, loss), then backward."""
    loss, _ = module.mixed_loss(module.in_model_layout(images), targets)
    loss.backward()


def make_module(mix: str, device: str) -> FGVCModule:
    return FGVCModule(model=MODEL, mix=MIXES[mix], optim=OPTIM, num_classes=5, channels_last=True).to(device)


@pytest.mark.parametrize("mix", MIXES)
def test_mixed_step_reads_nothing_back_and_uploads_once_without_blocking(mix):
    module = make_module(mix, "meta")
    images = torch.empty(4, 3, 32, 32, device="meta")
    targets = torch.zeros(4, dtype=torch.long, device="meta")
    with HostDeviceTraffic() as traffic:
        mixed_step(module, images, targets)
    assert traffic.uploads == [True], traffic.uploads


@pytest.mark.parametrize("per_sample", [False, True])
def test_mixing_functions_upload_once_without_blocking(per_sample):
    images = torch.empty(4, 3, 16, 16, device="meta")
    targets = torch.zeros(4, dtype=torch.long, device="meta")
    features, weight = torch.empty(4, 8, 4, 4, device="meta"), torch.empty(5, 8, device="meta")
    generator = torch.Generator().manual_seed(0)
    for mix in (
        lambda: snapmix(
            images,
            targets,
            class_activation_maps(features, weight, None, targets, (16, 16)),
            per_sample=per_sample,
            generator=generator,
        ),
        lambda: cutmix(images, targets, per_sample=per_sample, generator=generator),
        lambda: mixup(images, targets, per_sample=per_sample, generator=generator),
    ):
        with HostDeviceTraffic() as traffic:
            mix()
        assert traffic.uploads == [True]


def test_the_checker_catches_host_reads_and_blocking_uploads():
    """The dispatch mode fails for the bugs it exists to catch (on meta as on CUDA)."""
    images = torch.empty(2, 3, 8, 8, device="meta")
    with pytest.raises(AssertionError, match="reads a meta tensor"), HostDeviceTraffic():
        images.sum().item()
    with pytest.raises(AssertionError, match="copied to the host"), HostDeviceTraffic():
        images.cpu()
    with HostDeviceTraffic() as traffic:
        # the old paste: host boxes moved one blocking copy at a time
        boxes = torch.tensor([[0, 0, 4, 4], [2, 2, 6, 6]])
        paste(images, torch.tensor([1, 0]).to("meta"), boxes.to("meta"), boxes.to("meta"))
    assert traffic.uploads == [False, False, False]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mix", MIXES)
def test_mixed_step_is_sync_free_on_cuda(mix):
    module = make_module(mix, "cuda")
    images = torch.randn(8, 3, 64, 64, device="cuda")
    targets = torch.randint(5, (8,), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        mixed_step(module, images, targets)  # warm-up: lazy CUDA/cuDNN initialisation may synchronise
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            mixed_step(module, images, targets)
        finally:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("per_sample", [False, True])
def test_packed_upload_gives_the_host_values_on_cuda(per_sample):
    """One packed copy of int64 / odd-length float32 / bool tensors, and SnapMix on CUDA equals SnapMix on CPU."""
    host = [torch.arange(7), torch.rand(5), torch.tensor([True, False, True]), torch.randn(2, 3).t()]
    for before, after in zip(host, to_device(host, torch.device("cuda")), strict=True):
        assert after.device.type == "cuda" and torch.equal(after.cpu(), before)
    images, targets = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    cams = torch.rand(6, 16, 16)
    cams = cams / cams.sum(dim=(1, 2), keepdim=True)
    on_cpu = snapmix(images, targets, cams, per_sample=per_sample, generator=torch.Generator().manual_seed(3))
    on_cuda = snapmix(
        images.cuda(), targets.cuda(), cams.cuda(), per_sample=per_sample, generator=torch.Generator().manual_seed(3)
    )
    for field in ("images", "targets_b", "lam_a", "lam_b", "partner", "box_a", "box_b"):
        torch.testing.assert_close(getattr(on_cuda, field).cpu(), getattr(on_cpu, field), atol=1e-5, rtol=1e-5)
