#!/usr/bin/env bash
# The GPU proof, one command on the GPU machine (see docs/performance.md):
#   bash scripts/gpu_check.sh [OUT_DIR] [DATA_DIR]
# 1. the CUDA test suite (tests marked `cuda`: GPU vs CPU training, no host sync per step,
#    --fast with CUDA-graph replay vs eager, kill + resume, GPU checkpoint on the CPU,
#    evaluate.py --cuda vs the CPU, torchrun NCCL), with its log;
# 2. the GPU benchmark, scripts/bench.py --cuda, into OUT_DIR/bench/gpu.{md,json}.
# OUT_DIR defaults to $OUT (the device tool's folder) or ./gpu-check; DATA_DIR holds
# binarized_mnist.npz (default .gpudata, what ../shared/gpu/prepare.sh fills).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check}}
data=${2:-.gpudata}
mkdir -p "$out/bench"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/versions.txt"
python3 -c "import torch, pyro, numpy, sys; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| cuDNN', torch.backends.cudnn.version(), '| pyro', pyro.__version__, '| numpy', numpy.__version__, '| Python', sys.version.split()[0], '|', torch.cuda.get_device_name())" | tee -a "$out/versions.txt"
start=$(date +%s)
python3 -m pytest -m cuda -v -s -p no:cacheprovider --durations=0 tests/test_cuda.py 2>&1 | tee "$out/gpu_tests.log" | grep -E "PASSED|FAILED|ERROR|SKIPPED|GPU |CPU |synchronizing|passed|failed|Error" | tail -60
tests_rc=${PIPESTATUS[0]}
echo "cuda tests: exit $tests_rc in $(( $(date +%s) - start )) s"
if [ "${GPU_CHECK_BENCH:-1}" = 1 ]; then
  python3 scripts/bench.py --cuda --data-dir "$data" --batch-sizes 128 512 1024 4096 --widths 400 1000 \
    --nll-epochs 10 --out "$out/bench" 2>&1 | tail -80
  bench_rc=${PIPESTATUS[0]}
else
  bench_rc=0
fi
exit $(( tests_rc || bench_rc ))
