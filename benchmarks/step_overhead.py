"""Training-step time with each mixer / without mixing, measured side by side in one run.

    python benchmarks/step_overhead.py                      # CPU: ResNet-18, 224 px, batch 16, fp32, channels_last
    python benchmarks/step_overhead.py --layout nchw        # the same in the NCHW layout
    python benchmarks/step_overhead.py --device cuda        # GPU: ResNet-50, 448 px, batch 16, bf16, channels_last
    python benchmarks/step_overhead.py --device cuda --batch 32 --profile snapmix --trace trace.json
    python benchmarks/step_overhead.py --mixers cutmix fmix --json step_cost.json   # some rows; ratios to JSON

``--profile ROW`` then times that row's components (the no-grad CAM forward ``cam_forward``,
``class_activation_maps``, ``snapmix()``) against a plain step, and runs a few of its steps
under ``torch.profiler``: the top kernels, launches, copies and synchronisations per step,
and how busy the device was (the rest of a step is host gaps).

Rows: each mixer of ``conf/mix/`` at its YAML's settings with every batch mixed (``prob=1``: the
cost of a mixed step; ``fgvc_mix.training.mix_options`` names the options that are not a row, and why:
``snapmix_scratch`` is SnapMix at prob 0.5, ``transmix`` ViT-only); ``snapmix`` is the exact
default (``mix.cam_bn=batch``); ``snapmix_eval_bn`` runs
the CAM forward with BatchNorm's running statistics folded into the convolutions
(``mix.cam_bn=eval``, exact for eval-mode BatchNorm); the approximations: ``snapmix_half_res``
on a half-size copy of the batch (``mix.cam_resolution``), ``snapmix_bf16`` under bf16 autocast
while training stays fp32 (``mix.cam_dtype=bfloat16``; CPU only: on the GPU training is bf16 already).
``none_nchw`` (channels_last runs) is a plain step in the NCHW layout: what the layout itself buys.
A step is what ``FGVCModule.training_step`` does plus backward and an SGD step:
``module.mixer(images, targets, model)`` (for SnapMix: the no-grad CAM forward, CAMs, boxes, paste, weights),
the forward of the mixed batch, ``mixed_cross_entropy``, backward. ``authors`` is
the SnapMix authors' ``snapmix()`` (train-mode CAM forward that updates BatchNorm,
all-class CAMs, Python loops over the batch), reproduced here for comparison only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from timing import autocast, interleaved_medians, profile_steps

from fgvc_mix.mixing import MixedBatch, class_activation_maps, mixed_cross_entropy, snapmix
from fgvc_mix.training.config import compose_config
from fgvc_mix.training.mix_options import benchmark_mix_options
from fgvc_mix.training.module import FGVCModule

MIX_CONFIGS = tuple(benchmark_mix_options())
"""The conf/mix files timed, each a row named after it (``fgvc_mix.training.mix_options`` says which are left out)."""
SNAPMIX_VARIANTS = ("snapmix_eval_bn", "snapmix_half_res", "snapmix_bf16")
ROWS = (*MIX_CONFIGS, *SNAPMIX_VARIANTS, "authors")


def mix_config(name: str) -> dict:
    """``conf/mix/<name>.yaml`` as the training config composes it, with every batch mixed."""
    with tempfile.TemporaryDirectory() as output_dir:
        config = OmegaConf.to_container(compose_config([f"mix={name}"], output_dir).mix, resolve=True)
    return {**config, "prob": 1.0}


def mixer_configs(size: int, bf16_training: bool, rows: list[str]) -> dict[str, dict]:
    """The mixer config of each of ``rows`` (``authors`` is SnapMix's); ``none`` always comes first.

    ``snapmix_half_res`` runs its CAM forward at half the training side; ``snapmix_bf16`` exists
    only when training is fp32.
    """
    snapmix = mix_config("snapmix")
    variants = {
        "snapmix_eval_bn": {**snapmix, "cam_bn": "eval"},
        "snapmix_half_res": {**snapmix, "cam_resolution": size // 2},
        "snapmix_bf16": {**snapmix, "cam_dtype": "bfloat16"},
        "authors": snapmix,
    }
    chosen = ["none", *(row for row in rows if row != "none" and not (bf16_training and row == "snapmix_bf16"))]
    return {row: variants[row] if row in variants else mix_config(row) for row in chosen}


OPTIM = {"optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 1e-3, "momentum": 0.9}}


def authors_snapmix(module: FGVCModule, images: torch.Tensor, targets: torch.Tensor, beta: float = 5.0):
    """The authors' get_spm + snapmix (utils/mixmethod.py), batch mode, with their loops and K-class maps."""
    model = module.model
    with torch.no_grad():
        fms = F.relu(model.forward_features(images))  # train mode: BatchNorm running stats updated again
        weight = model.head.weight.view(*model.head.weight.shape, 1, 1)
        out = F.conv2d(fms, weight, bias=model.head.bias)
        outmaps = torch.stack([out[i, targets[i]] for i in range(images.shape[0])])
        outmaps = F.interpolate(outmaps[:, None], images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        for i in range(images.shape[0]):
            outmaps[i] -= outmaps[i].min()
            outmaps[i] /= outmaps[i].sum()
    batch_size, _, height, width = images.shape
    lam, lam1 = np.random.beta(beta, beta), np.random.beta(beta, beta)
    rand_index = torch.randperm(batch_size, device=images.device)
    maps_b, targets_b = outmaps[rand_index], targets[rand_index]

    def rand_bbox(lam_value):
        cut = np.sqrt(1.0 - lam_value)
        cut_w, cut_h = int(width * cut), int(height * cut)
        cx, cy = np.random.randint(width), np.random.randint(height)
        return (
            np.clip(cx - cut_w // 2, 0, width),
            np.clip(cy - cut_h // 2, 0, height),
            np.clip(cx + cut_w // 2, 0, width),
            np.clip(cy + cut_h // 2, 0, height),
        )

    x1, y1, x2, y2 = rand_bbox(lam)
    u1, v1, u2, v2 = rand_bbox(lam1)
    lam_a = torch.ones(batch_size, device=images.device)
    lam_b = torch.zeros(batch_size, device=images.device)
    images = images.clone()
    if (x2 - x1) * (y2 - y1) > 0 and (u2 - u1) * (v2 - v1) > 0:
        patch = F.interpolate(
            images[rand_index, :, v1:v2, u1:u2], size=(y2 - y1, x2 - x1), mode="bilinear", align_corners=True
        )
        images[:, :, y1:y2, x1:x2] = patch
        lam_a = 1 - outmaps[:, y1:y2, x1:x2].sum((1, 2)) / (outmaps.sum((1, 2)) + 1e-8)
        lam_b = maps_b[:, v1:v2, u1:u2].sum((1, 2)) / (maps_b.sum((1, 2)) + 1e-8)
        same = targets == targets_b
        tmp = lam_a.clone()
        lam_a[same] += lam_b[same]
        lam_b[same] += tmp[same]
    return MixedBatch(images, targets, targets_b, lam_a, lam_b)


def arguments() -> argparse.ArgumentParser:
    """The command line; ``--mixers`` defaults to every row of ``ROWS``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", default=None, help="default: resnet18 on cpu, resnet50 on cuda")
    parser.add_argument("--size", type=int, default=None, help="default: 224 on cpu, 448 on cuda")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--layout", default="channels_last", choices=["channels_last", "nchw"])
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--mixers", nargs="+", choices=ROWS, default=list(ROWS), help="rows (none always runs)")
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the ratios here (benchmarks/leaderboard.py)"
    )
    parser.add_argument("--profile", default=None, help="a SnapMix row (e.g. snapmix) to break down and profile")
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--trace", default=None, help="with --profile: write a Chrome trace of the profiled steps here")
    return parser


def main() -> None:
    args = arguments().parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    name = args.model or ("resnet50" if cuda else "resnet18")
    size = args.size or (448 if cuda else 224)
    torch.manual_seed(0)
    np.random.seed(0)

    model_config = {"_target_": "fgvc_mix.models.build_classifier", "name": name, "pretrained": False}
    channels_last = args.layout == "channels_last"
    rows = mixer_configs(size, bf16_training=cuda, rows=args.mixers)
    configs = {mixer: (config, channels_last) for mixer, config in rows.items()}
    if channels_last:  # what the layout itself buys: a plain step in NCHW
        configs["none_nchw"] = (configs["none"][0], False)
    modules = {
        key: FGVCModule(model_config, config, OPTIM, num_classes=args.classes, channels_last=layout)
        for key, (config, layout) in configs.items()
    }
    base = modules["none"]
    for module in modules.values():
        module.model.load_state_dict(base.model.state_dict())
        module.to(device).train()
    batch = torch.randn(args.batch, 3, size, size, device=device)
    inputs = {key: module.in_model_layout(batch) for key, module in modules.items()}
    targets = torch.randint(args.classes, (args.batch,), device=device)
    optimizers = {k: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for k, m in modules.items()}

    def step(key: str):
        module, images = modules[key], inputs[key]

        def run():
            with autocast(device):
                mixed = (
                    authors_snapmix(module, images, targets)
                    if key == "authors"
                    else module.mixer(images, targets, module.model)
                )
                loss = mixed_cross_entropy(module(mixed.images), mixed)
            optimizers[key].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[key].step()

        return run

    medians, peaks = interleaved_medians({k: step(k) for k in modules}, args.repeats, args.warmup, device)
    precision = f"{'bf16 autocast' if cuda else 'fp32'}, {args.layout}"
    print(
        f"{name}, {size} px, batch {args.batch}, {args.classes} classes, {device.type} ({precision}), "
        f"{args.repeats} interleaved repeats, torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    print(f"{'mixer':<17} {'step / none':>12} {'peak MiB':>10}")
    for key in modules:
        peak = f"{peaks[key]:.0f}" if cuda else "n/a"
        print(f"{key:<17} {medians[key] / medians['none']:>12.3f} {peak:>10}")
    if args.json:
        settings = {"model": name, "size": size, "batch": args.batch, "classes": args.classes, "device": device.type}
        settings |= {"precision": precision, "repeats": args.repeats, "threads": torch.get_num_threads()}
        ratios = {key: medians[key] / medians["none"] for key in modules}
        output = {"settings": settings, "step_cost": ratios, "seconds": medians}
        args.json.write_text(json.dumps(output, indent=1))
    if args.profile:
        key = args.profile
        step_runs = {"plain step": step("none"), f"{key} step": step(key)}
        profile_report(modules[key], inputs[key], targets, step_runs, args, device)


def profile_report(
    module: FGVCModule,
    images: torch.Tensor,
    targets: torch.Tensor,
    step_runs: dict[str, object],
    args: argparse.Namespace,
    device: torch.device,
) -> None:
    """Components of a SnapMix step against a plain step (synchronised medians), then the profiler's view."""
    with torch.no_grad(), autocast(device):
        features = module.model.forward_features(images)
        cams = module.mixer.cam_forward(module.model, images, targets)
    head, size = module.model.head, tuple(images.shape[-2:])
    generator = torch.Generator().manual_seed(0)

    def cam_forward() -> None:
        with autocast(device):
            module.mixer.cam_forward(module.model, images, targets)

    components = {
        **step_runs,
        "cam_forward": cam_forward,
        "class_activation_maps": lambda: class_activation_maps(features, head.weight, head.bias, targets, size),
        "snapmix()": lambda: snapmix(images, targets, cams, generator=generator),
    }
    medians, _ = interleaved_medians(components, args.repeats, args.warmup, device)
    plain = medians["plain step"]
    print(f"\n{'component':<22} {'ms':>9} {'/ plain step':>13}")
    for name, seconds in medians.items():
        print(f"{name:<22} {seconds * 1e3:>9.2f} {seconds / plain:>13.3f}")
    step_name = list(step_runs)[1]
    table, busy_ms = profile_steps(step_runs[step_name], args.profile_steps, device, args.trace)
    print(f"\ntorch.profiler: {args.profile_steps} steps of {step_name}\n{table}")
    if device.type == "cuda":
        step_ms = medians[step_name] * 1e3
        print(f"device busy {busy_ms:.2f} ms of a {step_ms:.2f} ms step ({busy_ms / step_ms:.0%}); the rest: host gaps")


if __name__ == "__main__":
    main()
