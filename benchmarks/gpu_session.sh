#!/usr/bin/env bash
# The whole product checked on one GPU machine, in ONE call of under 10 minutes, ending in one summary table:
#   build against the machine's CUDA torch; every GPU test (pytest -m cuda); `python -m jna_fast.train` on the
#   synthetic set for a few hundred steps with DALI and without it (PyAV); evaluate and predict on the result;
#   benchmarks/throughput.py (ResNet-50, 224 px, bf16, channels_last) without and with --compile; the copy
#   bandwidth and the op benchmarks against it; the DALI GPU loader against the CPU loaders.
#
#   bash benchmarks/gpu_session.sh        # env: OUT (default gpu_results), BUDGET_S (default 560), PYTHON
#
# Every step runs under its own timeout and within what is left of BUDGET_S; a step that fails, times out or
# has no time left is recorded in the summary and the next one runs. Exit status: 0 when every step passed.
# Logs and results go to a work folder; $OUT gets at most 8 files (the device tool brings back no more):
# summary.txt, ops.json, ops.md, throughput.json, throughput_compile.json, loader.txt, logs.tar.gz.
#
# The lent machines reach no registry and have neither DALI nor PyAV. benchmarks/gpu_wheels.sh (run here, with
# network) downloads their wheels and cuts them into parts of under 60 MiB in batches, one batch per device
# call (a call carries at most 64 MiB); each batch call copies its parts to $JNA_FAST_WHEELS on the machine,
# which stays warm between calls, and this script joins, checks (sha256) and installs them before anything
# else. Without staged wheels the DALI and PyAV steps are recorded as skipped.
set -uo pipefail

py=${PYTHON:-python3}
out=${OUT:-gpu_results}
budget=${BUDGET_S:-560}
wheels=${JNA_FAST_WHEELS:-/tmp/jna_fast_wheels}
work=$(mktemp -d /tmp/gpu_session.XXXXXX)
trap 'rm -rf "$work"' EXIT
logs="$work/logs"
mkdir -p "$out" "$logs"
summary="$out/summary.txt"
started=$(date +%s)
failures=0
: > "$summary"

record() {  # record NAME VERDICT SECONDS DETAIL
  printf '%-22s %-18s %5s  %s\n' "$1" "$2" "$3" "$4" >> "$summary"
}

# step NAME LIMIT_S COMMAND...: runs COMMAND under min(LIMIT_S, time left), output in $logs/NAME.log.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$(( budget - ($(date +%s) - started) ))
  if (( left < 10 )); then
    record "$name" "SKIPPED" 0 "no time left in BUDGET_S=$budget"
    failures=$((failures + 1))
    return 1
  fi
  (( limit > left )) && limit=$left
  local began rc verdict
  began=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" > "$logs/$name.log" 2>&1
  rc=$?
  if (( rc == 0 )); then
    verdict=ok
  elif (( rc == 124 || rc == 137 )); then
    verdict="TIMEOUT(${limit}s)"
  else
    verdict="FAILED(rc=$rc)"
  fi
  (( rc != 0 )) && failures=$((failures + 1))
  record "$name" "$verdict" "$(( $(date +%s) - began ))" "$(grep -v '^\s*$' "$logs/$name.log" | tail -n 1 | cut -c1-110)"
  return $rc
}

skip() {  # skip NAME REASON
  record "$1" "SKIPPED" 0 "$2"
  failures=$((failures + 1))
}

have_module() { PYTHONPATH="${PYTHONPATH:-}" "$py" -c "import $1" > /dev/null 2>&1; }

if [[ -f "$wheels/SHA256SUMS" ]]; then
  step wheels 90 bash benchmarks/gpu_wheels.sh install "$wheels" /tmp/site \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
else
  skip wheels "no staged wheels in $wheels (benchmarks/gpu_wheels.sh)"
fi

step build 240 "$py" -m pip install --no-build-isolation --no-deps -e .
step info 30 "$py" -m jna_fast.info
step gpu_tests 150 "$py" -m pytest tests -m cuda -q -p no:cacheprovider

# Two short training runs side by side (the GPU has room for both): with DALI decoding on the GPU, and with
# the CPU loader (PyAV) feeding the GPU.
synthetic="$work/synthetic"
train_common=(--dataset synthetic --root "$synthetic" --max-steps 300 --no-progress)
"$py" -m jna_fast.train --help > /dev/null 2>&1  # import once (compiles bytecode) before two processes race
if have_module nvidia.dali && have_module av; then
  step synthetic_data 90 "$py" -m jna_fast.train "${train_common[@]}" --max-steps 1 --out "$work/warmup"
  step train_pyav 150 "$py" -m jna_fast.train "${train_common[@]}" --data-backend pyav --out "$work/run_pyav" &
  pyav_job=$!
  step train_dali 150 "$py" -m jna_fast.train "${train_common[@]}" --data-backend dali --out "$work/run_dali"
  wait "$pyav_job" || failures=$((failures + 1))
else
  skip train_dali "nvidia.dali or av missing (stage the wheels: benchmarks/gpu_wheels.sh)"
  have_module av || skip train_pyav "av missing (stage the wheels: benchmarks/gpu_wheels.sh)"
  have_module av && step train_pyav 150 "$py" -m jna_fast.train "${train_common[@]}" --data-backend pyav \
    --out "$work/run_pyav"
fi

checkpoint=$(ls "$work"/run_dali/last.pt "$work"/run_pyav/last.pt 2>/dev/null | head -n 1)
video=$(find "$synthetic" -type f \( -name '*.avi' -o -name '*.mp4' \) 2>/dev/null | sort | head -n 1)
if [[ -n "$checkpoint" ]]; then
  step evaluate 60 "$py" -m jna_fast.evaluate "$checkpoint" --out "$work/evaluation"
  if [[ -n "$video" ]]; then
    step predict 30 "$py" -m jna_fast.predict "$checkpoint" "$video" --top-k 5
  else
    skip predict "no video in the synthetic set under $synthetic"
  fi
else
  skip evaluate "no checkpoint: both training runs failed"
  skip predict "no checkpoint: both training runs failed"
fi

step copy_bandwidth 20 "$py" benchmarks/copy_bandwidth.py --device cuda
# The kernels against eager PyTorch (the reference and its fastest plain forms) and the copy ceiling; the
# torch.compile provider is left out here: a dozen compilations do not fit the budget.
step op_benchmarks 100 env JNA_FAST_BENCH_SECONDS=0.3 \
  JNA_FAST_BENCH_PROVIDERS=reference,eager_addcmul,eager_einsum_bmm,eager_matmul,cuda,triton \
  "$py" -m pytest benchmarks/bench_ops.py --benchmark-only --benchmark-json="$out/ops.json" -q -p no:cacheprovider
[[ -f "$out/ops.json" ]] && "$py" benchmarks/report.py "$out/ops.json" --markdown > "$out/ops.md" 2>&1
step throughput 60 "$py" benchmarks/throughput.py --backbone resnet50 --size 224 --precision bf16 --channels-last \
  --json "$out/throughput.json"
step throughput_compile 120 "$py" benchmarks/throughput.py --backbone resnet50 --size 224 --precision bf16 \
  --channels-last --compile --backends cuda triton --json "$out/throughput_compile.json"
if have_module nvidia.dali; then
  step loader 60 "$py" benchmarks/bench_loader.py --videos 8 --frames 32 --epochs 2 --threads 8
  cp "$logs/loader.log" "$out/loader.txt"
else
  skip loader "nvidia.dali missing: no GPU loader to compare (benchmarks/gpu_wheels.sh)"
fi

tar czf "$out/logs.tar.gz" -C "$work" logs
{
  echo "== $(date -u +%Y-%m-%dT%H:%MZ) $("$py" -c 'import torch; print(torch.cuda.get_device_name(0))' 2>&1)," \
    "$(( $(date +%s) - started ))s, $failures step(s) not ok"
  tail -n 1 "$logs/gpu_tests.log" 2>/dev/null
  cat "$logs/copy_bandwidth.log" 2>/dev/null
  grep -E "fwd\+bwd" "$out/ops.md" 2>/dev/null | grep -E "\| (cuda|triton) \|"
  tail -n 4 "$logs/throughput.log" "$logs/throughput_compile.log" 2>/dev/null
} >> "$summary"
cat "$summary"
(( failures == 0 ))
