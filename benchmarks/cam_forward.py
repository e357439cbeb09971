"""The CAM forward alone, per option, as a share of a plain training step, measured side by side.

    python benchmarks/cam_forward.py [--layout nchw] [--repeats 10] [--compiled]

ResNet-18, 224 px, batch 16, 200 classes, fp32, CPU by default. Rows: a plain training step
(forward + backward, the unit), then the mixer's ``CamForward`` with BatchNorm batch statistics
(the exact default), eval-mode BatchNorm unfolded and folded into the convolutions
(``mix.cam_bn=eval``), ``mix.cam_dtype=bfloat16`` and ``mix.cam_resolution`` at half the side.
``--compiled`` adds the batch-statistics and folded eval CAM forwards through ``torch.compile``
(``fgvc_mix.models.cam_compile``; compiled during the warm-up calls, so ``--warmup`` >= 1).
A SnapMix step costs about 1 + its row (plus the mixing itself, see mixing_overhead.py).
On CUDA everything runs under bf16 autocast, as ``trainer=gpu`` trains. The weights do not
change between calls here, so ``cams_eval_bn_folded`` reuses its cached folded weights; in
training they are refolded once per optimiser step (step_overhead.py's ``snapmix_eval_bn`` row).
"""

from __future__ import annotations

import argparse
import contextlib

import torch
import torch.nn.functional as F
from timing import autocast, interleaved_medians

from fgvc_mix.models.batchnorm import eval_mode
from fgvc_mix.models.cam_compile import compile_cam_forward
from fgvc_mix.training.module import FGVCModule

OPTIM = {"optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 1e-3}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--layout", default="channels_last", choices=["channels_last", "nchw"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--compiled", action="store_true", help="add torch.compile'd CAM forward rows")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    snapmix = {"_target_": "fgvc_mix.mixing.SnapMix"}
    options = {
        "cams_batch_bn": {},
        "cams_eval_bn_unfolded": {},  # cam_bn=batch's forward with the model in eval mode: BatchNorm as it is
        "cams_eval_bn_folded": {"cam_bn": "eval"},
        "cams_bf16": {"cam_dtype": "bfloat16"},
        "cams_half_res": {"cam_resolution": args.size // 2},
    }
    if args.compiled:
        options.update({"cams_batch_bn_compiled": {}, "cams_eval_bn_compiled": {"cam_bn": "eval"}})
    model = {"_target_": "fgvc_mix.models.build_classifier", "name": args.model, "pretrained": False}
    channels_last = args.layout == "channels_last"
    modules = {
        key: FGVCModule(model, {**snapmix, **mix}, OPTIM, args.classes, channels_last=channels_last).to(device).train()
        for key, mix in options.items()
    }
    for key, module in modules.items():
        if key.endswith("_compiled"):
            compile_cam_forward(module.model)
    images = modules["cams_batch_bn"].in_model_layout(torch.randn(args.batch, 3, args.size, args.size, device=device))
    targets = torch.randint(args.classes, (args.batch,), device=device)
    plain = modules["cams_batch_bn"]

    def train_step() -> None:
        plain.zero_grad(set_to_none=True)
        with autocast(device):
            loss = F.cross_entropy(plain(images), targets)
        loss.backward()

    def cams(key: str, module: FGVCModule) -> None:
        unfolded = eval_mode(module.model) if key == "cams_eval_bn_unfolded" else contextlib.nullcontext()
        with autocast(device), unfolded:
            module.mixer.cam_forward(module.model, images, targets)

    candidates = {"train_step": train_step}
    candidates.update({key: (lambda k=key, m=module: cams(k, m)) for key, module in modules.items()})
    medians, _ = interleaved_medians(candidates, args.repeats, args.warmup, device)
    print(
        f"{args.model}, {args.size} px, batch {args.batch}, {args.classes} classes, {device.type} "
        f"({'bf16 autocast' if device.type == 'cuda' else 'fp32'}, "
        f"{args.layout}), {args.repeats} interleaved repeats, threads {torch.get_num_threads()}"
    )
    print(f"{'row':<22} {'time / train step':>18}")
    for key, seconds in medians.items():
        print(f"{key:<22} {seconds / medians['train_step']:>18.3f}")


if __name__ == "__main__":
    main()
