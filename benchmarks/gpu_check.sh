#!/usr/bin/env bash
# One short run on a GPU machine (~5 minutes on one H200): every figure of the README's GPU rows.
#   bash benchmarks/gpu_check.sh   (from the repository root, after `pip install -e ".[dev]"`)
# 1) a bf16 + channels_last training smoke run through the real configs (trainer=gpu),
# 2) SnapMix step / plain step for each mixer and CAM option: ResNet-50, 448 px, batch 16, bf16,
# 3) the mixing tensor code as a share of a ResNet-50 448-px training step.
set -euo pipefail
python=${PYTHON:-python}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
$python -m fgvc_mix.train trainer=gpu +trainer.fast_dev_run=true model=resnet50 model.pretrained=false mix=snapmix \
    dataset.image_size=448 dataset.resize_size=512 dataset.batch_size=16 logger=[] callbacks=[] \
    hydra.run.dir="${TMPDIR:-/tmp}/fgvc_mix_gpu_check"
cd "$(dirname "$0")"
$python step_overhead.py --device cuda --repeats 10
$python mixing_overhead.py --device cuda --repeats 10
