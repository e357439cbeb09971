#!/usr/bin/env bash
# One prepared GPU run (planned for ~5 minutes, at most 8, on one H200; not yet run on one) filling every GPU row
# of issue 14 and the README:
#   1. the CUDA tests: a mixed training step under torch.cuda.set_sync_debug_mode("error") for every mixer and
#      CAM option (tests/test_sync_free.py), cached BatchNorm folding after bf16 steps (tests/test_batchnorm_folding.py);
#   2. a bf16 + channels_last training smoke run through the real configs (trainer=gpu);
#   3. step / plain-step ratios, interleaved: plain, exact SnapMix, mix.cam_bn=eval, mix.cam_resolution=224, CutMix,
#      Mixup, the authors' snapmix(); ResNet-50, 448 px, bf16 autocast, channels_last, batch 32 (with the exact
#      SnapMix step's components and a torch.profiler top-kernels dump + Chrome trace), then batch 16;
#   4. the CAM forward alone per option (cam_forward.py); 5. the mixing tensor code as a share of a step
#      (mixing_overhead.py, batch 32 and 16); 6. end-to-end images/s per mixer and the bare train loader
#      through compose_config + train.build on a generated CUB tree, 15 loader workers (train_throughput.py);
#   7. dataset.decode=gpu: images/s per loader worker (bytes + crop draw) against a CPU-decoding worker, the
#      batched device decode + transform, and its pixel difference from the CPU path (data_throughput.py);
#   8. the opt-in compiled CAM forward (mix.cam_compile) (fgvc_mix.models.cam_compile) against eager, last: compiling may be slow.
# Outputs under $OUT (default benchmarks/outputs/gpu_check): gpu_check.log (everything), snapmix_trace.json.gz.
# A failing section is reported and the others still run; the exit status says whether any failed. The
# sections' time limits add up to 8 minutes.
#
# The device call, from the repository root. The machine has torch/torchvision/lightning/timm but no Hydra:
# carry the wheels, prepared once here (wheels/ is gitignored):
#   .venv/bin/python -m pip download hydra-core==1.3.8 omegaconf==2.3.1 --no-deps -d wheels/
#   .venv/bin/python -m pip wheel antlr4-python3-runtime==4.9.3 --no-deps -w wheels/
#   run(command="bash benchmarks/gpu_check.sh", carry=["wheels"], timeout_s=540)
# Dry run on CPU, tiny sizes, every command (2 min 20 s on 2 idle cores, 2026-12-01):
#   DRY_RUN=1 PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/benchmarks/outputs/gpu_check}
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
python=${PYTHON:-python3}
[[ $python == */* ]] && python=$(cd "$(dirname "$python")" && pwd)/$(basename "$python") # sections cd
if ! $python -c "import hydra" 2>/dev/null; then
    $python -m pip install -q --no-index --no-deps --no-compile --target /tmp/fgvc_site "$root"/wheels/*.whl || exit 1
    export PYTHONPATH=/tmp/fgvc_site
fi
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if [[ ${DRY_RUN:-0} == 1 ]]; then
    device=cpu slower=4 # shared CPU cores: looser section limits
    smoke=(trainer=cpu model=small_cnn dataset.image_size=32 dataset.batch_size=4)
    step=(--model resnet18 --size 32 --classes 4 --repeats 1 --warmup 0 --profile-steps 1)
    large=2 small=2
    cams=(--model resnet18 --size 32 --batch 2 --repeats 1)
    mixing=(--size 64 --repeats 1 --warmup 0)
    throughput=(--quick --steps 2 --warmup 1)
    decode=(--images 4 --repeats 1 --batch 4)
else
    device=cuda slower=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    smoke=(trainer=gpu model=resnet50 dataset.image_size=448 dataset.resize_size=512 dataset.batch_size=16)
    step=(--model resnet50 --size 448 --repeats 20 --warmup 3 --profile-steps 3)
    large=32 small=16
    cams=(--model resnet50 --size 448 --batch 32 --repeats 20)
    mixing=(--size 448 --repeats 20 --warmup 3)
    throughput=(--model resnet50 --size 448 --resize 512 --batch 32 --workers 15 --steps 20 --warmup 5)
    decode=(--images 64 --repeats 5 --batch 32)
fi
$python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"

failed=()
section() { # section NAME SECONDS COMMAND...: run it under a time limit, log its status, carry on
    local name=$1 limit=$2 status
    shift 2
    echo
    echo "=== $name ($(date -u +%H:%M:%S) UTC)"
    timeout $((limit * slower)) "$@"
    status=$?
    if ((status != 0)); then
        echo "!!! $name failed (exit $status)"
        failed+=("$name")
    fi
}

section "CUDA tests: sync-free mixed steps, BatchNorm folding, device JPEG decode" 60 \
    $python -m pytest -q -p no:cacheprovider "$root/tests/test_sync_free.py" "$root/tests/test_batchnorm_folding.py" \
    "$root/tests/test_device_decode.py"
section "training smoke run" 40 \
    $python -m fgvc_mix.train +trainer.fast_dev_run=true model.pretrained=false mix=snapmix logger=[] callbacks=[] \
    "${smoke[@]}" hydra.run.dir="${TMPDIR:-/tmp}/fgvc_mix_gpu_check"
cd "$root/benchmarks" || exit 1
section "step ratios, batch $large, exact SnapMix profiled" 80 \
    $python step_overhead.py --device $device --batch $large "${step[@]}" \
    --profile snapmix --trace "$out/snapmix_trace.json"
gzip -f "$out/snapmix_trace.json" 2>/dev/null
section "step ratios, batch $small" 35 $python step_overhead.py --device $device --batch $small "${step[@]}"
section "CAM forward per option" 20 $python cam_forward.py --device $device "${cams[@]}"
section "mixing tensor code, batch $large" 20 $python mixing_overhead.py --device $device --batch $large "${mixing[@]}"
section "mixing tensor code, batch $small" 15 $python mixing_overhead.py --device $device --batch $small "${mixing[@]}"
section "end-to-end images/s" 110 \
    $python train_throughput.py --device $device "${throughput[@]}" \
    --extra "decode_gpu mix=none dataset.decode=gpu" \
    --extra "snapmix_eval_bn mix=snapmix mix.cam_bn=eval" \
    --extra "snapmix_r101 mix=snapmix model=resnet101" \
    --extra "snapmix_b64 mix=snapmix dataset.batch_size=64"
section "decode=gpu: images/s per loader worker, batched device decode, pixels vs the CPU path" 45 \
    $python data_throughput.py --decode gpu --device $device "${decode[@]}"
section "compiled CAM forward vs eager (torch.compile during warm-up)" 55 \
    $python cam_forward.py --device $device "${cams[@]}" --warmup 2 --compiled

echo
if ((${#failed[@]})); then
    echo "gpu_check: ${#failed[@]} section(s) failed: ${failed[*]}"
    exit 1
fi
echo "gpu_check: all sections passed ($(date -u +%H:%M:%S) UTC)"
