"""Cost of the SnapMix mixing itself relative to one ResNet-50 training step, measured side by side.

    python benchmarks/mixing_overhead.py [--device cuda] [--batch 32] [--repeats 5]

Mixing = target-class CAMs from given ResNet-50 feature maps (B x 2048 x 14 x 14,
200 classes) + boxes + paste + label weights on B images of 3 x 448 x 448, in batch
mode and per-sample mode. The extra CAM forward pass is not included here (see
step_overhead.py); this isolates the tensor code of ``fgvc_mix.mixing``. On CUDA the
step runs as training does there (bf16 autocast, channels_last) and the feature maps
are bf16, as the CAM forward under autocast returns them.
"""

from __future__ import annotations

import argparse

import torch
import torchvision
from timing import autocast, interleaved_medians

from fgvc_mix.mixing import class_activation_maps, snapmix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    batch, classes, size = args.batch, 200, args.size
    torch.manual_seed(0)
    layout = torch.channels_last if cuda else torch.contiguous_format
    images = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=layout)
    targets = torch.randint(classes, (batch,), device=device)
    side = -(-size // 32)  # ResNet-50's last feature map
    features = torch.randn(batch, 2048, side, side, device=device).relu().to(torch.bfloat16 if cuda else torch.float32)
    head = torch.nn.Linear(2048, classes).to(device)
    model = torchvision.models.resnet50(num_classes=classes).to(device, memory_format=layout).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)

    def mixing(per_sample: bool):
        @torch.no_grad()
        def run():
            cams = class_activation_maps(features, head.weight, head.bias, targets, (size, size))
            return snapmix(images, targets, cams, per_sample=per_sample, generator=generator)

        return run

    def training_step():
        with autocast(device):
            loss = torch.nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    candidates = {"step": training_step, "batch": mixing(False), "per_sample": mixing(True)}
    medians, _ = interleaved_medians(candidates, args.repeats, args.warmup, device)
    print(
        f"SnapMix mixing vs ResNet-50 training step, batch {batch}, {size} px, {classes} classes, {device.type}"
        f"{' (bf16 autocast, channels_last)' if cuda else ' (fp32)'}, {args.repeats} interleaved repeats, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    for mode in ("batch", "per_sample"):
        print(f"{mode:<11} mixing / step = {medians[mode] / medians['step']:.4f}")


if __name__ == "__main__":
    main()
