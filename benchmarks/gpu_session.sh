#!/usr/bin/env bash
# The product on one GPU machine (one H100 or H200, its own Python and CUDA torch), in ONE run of at most 8 minutes
# that ends in one summary. The parts, in the order they run:
#   build       pip install --no-build-isolation --no-deps -e . against the machine's torch (for its own GPU)
#   tests       every GPU test: pytest -m cuda
#   ops         the copy bandwidth, then both ops at the model's shapes (bench_ops.py, JNA_FAST_BENCH_SHAPES=model)
#               against it and against eager PyTorch
#   throughput  benchmarks/throughput.py: JNA ResNet-50 training and inference clips/s, 224 px, bf16, channels_last,
#               with the FLOP per clip, GFLOP/s and share of the bf16 matmul peak measured in the same run
#   train       a short `python -m jna_fast.train` on a small synthetic set with the PyAV loader feeding the GPU,
#               then evaluate and predict on its checkpoint
#   compile     benchmarks/throughput.py as above with --compile (last: its compilations take the longest)
#
#   bash benchmarks/gpu_session.sh                  # every part; BUDGET_S defaults to 470 s
#   bash benchmarks/gpu_session.sh --only ops       # build, then the parts named (comma-separated); 170 s
#   bash benchmarks/gpu_session.sh --dry-run        # on a machine without a GPU: every step that needs none, at
#                                                   # small sizes; the others skipped with one line each
#
# Environment: OUT (results folder, default gpu_results), BUDGET_S, PYTHON (default python3), JNA_FAST_WHEELS
# (default .gpu_wheels: wheels to install first; benchmarks/gpu_wheels.sh download fetches PyAV's), TORCH_CUDA_ARCH_LIST
# (default: the machine's GPU only, which keeps the build short).
# Every step runs under its own timeout and within what is left of BUDGET_S; a step that fails, times out or finds
# no time left is recorded and the next one runs. Exit status 0 when no step failed. OUT gets at most 8 files:
# summary.txt, ops.json, ops.md, throughput.json, throughput_compile.json, train.txt, logs.tar.gz.
#
# DALI: its wheels are far larger than what one device call carries, so a machine without DALI records the DALI
# steps as skipped. With DALI installed, the same checks are
#   python -m jna_fast.train --dataset synthetic --data-backend dali --max-steps 300
#   python benchmarks/bench_loader.py --videos 8 --frames 32 --epochs 2 --threads 8
set -uo pipefail

usage() {
  echo "usage: bash benchmarks/gpu_session.sh [--dry-run] [--only PART[,PART...]]" >&2
  echo "  PART: build tests ops throughput train compile" >&2
  exit 2
}

PARTS="build tests ops throughput train compile"
dry_run=0
only=""
while (( $# )); do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --only) [[ $# -ge 2 ]] || usage; only=$2; shift ;;
    --only=*) only=${1#--only=} ;;
    *) usage ;;
  esac
  shift
done
for part in ${only//,/ }; do
  [[ " $PARTS " == *" $part "* ]] || { echo "--only: unknown part '$part'" >&2; usage; }
done

py=${PYTHON:-python3}
out=${OUT:-gpu_results}
budget=${BUDGET_S:-$([[ -n "$only" ]] && echo 170 || echo 470)}
# A dry run proves the commands, not the timing: a slow or busy CPU gets three times each step's limit.
limit_scale=1
if (( dry_run )); then
  budget=${BUDGET_S:-1200}
  limit_scale=3
fi
wheels=${JNA_FAST_WHEELS:-.gpu_wheels}
work=$(mktemp -d /tmp/gpu_session.XXXXXX)
trap 'rm -rf "$work"' EXIT
logs="$work/logs"
mkdir -p "$out" "$logs"
summary="$out/summary.txt"
started=$(date +%s)
failures=0
: > "$summary"
export JNA_FAST_CACHE="$work/cache" PYTHONUNBUFFERED=1

wanted() { [[ -z "$only" || ",$only," == *",$1,"* ]]; }

record() {  # record NAME VERDICT SECONDS DETAIL
  printf '%-19s %-16s %5s  %s\n' "$1" "$2" "$3" "$4" >> "$summary"
}

# step NAME LIMIT_S COMMAND...: runs COMMAND under min(LIMIT_S, time left), output in $logs/NAME.log.
step() {
  local name=$1 limit=$(( $2 * limit_scale ))
  shift 2
  local left=$(( budget - ($(date +%s) - started) ))
  if (( left < 10 )); then
    record "$name" "NO_TIME" 0 "nothing left of BUDGET_S=$budget"
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
  record "$name" "$verdict" "$(( $(date +%s) - began ))" "$(grep -v '^\s*$' "$logs/$name.log" | tail -n 1 | cut -c1-100)"
  return $rc
}

skip() {  # skip NAME REASON: a step this machine cannot run (not a failure)
  record "$1" "skipped" 0 "$2"
}

not_run() {  # not_run NAME... REASON: steps an earlier failure left without input (failures)
  local reason=${*: -1} name
  for name in "${@:1:$#-1}"; do
    record "$name" "NOT_RUN" 0 "$reason"
    failures=$((failures + 1))
  done
}

# gpu_step NAME LIMIT_S COMMAND...: a step that needs a CUDA device; a dry run skips it.
gpu_step() {
  if (( dry_run )); then
    skip "$1" "dry run: needs a CUDA device"
    return 0
  fi
  step "$@"
}

have_module() { "$py" -c "import $1" > /dev/null 2>&1; }

# Sizes: the machine's own in a real run; a dry run proves every command at sizes a 2-core CPU runs in seconds.
if (( dry_run )); then
  shapes=smoke; bench_env=(JNA_FAST_BENCH_SECONDS=0 JNA_FAST_BENCH_PROVIDERS=reference,cpp
                             JNA_FAST_BENCH_DTYPES=float32 JNA_FAST_BENCH_MODES=fwd+bwd)
  copy_args=(--device cpu --mib 64)
  throughput_args=(--device cpu --backbone resnet18 --size 32 --batch-size 2 --segments 2 --flow-length 2
                   --precision fp32 --no-channels-last --warmup 1 --steps 1 --backends cpp --peak-sizes 256 512)
  train_args=(--synthetic-classes 3 --synthetic-videos-per-class 4 --epochs 1 --max-steps 2 --size 32 --batch-size 2 --num-segments 2
              --eval-segments 3)
else
  shapes=model; bench_env=(JNA_FAST_BENCH_SECONDS=0.2
                           JNA_FAST_BENCH_PROVIDERS=reference,eager_addcmul,eager_einsum_bmm,eager_matmul,cuda,triton)
  copy_args=(--device cuda)
  throughput_args=(--backbone resnet50 --size 224 --batch-size 32 --segments 3 --flow-length 5 --precision bf16
                   --channels-last --warmup 3 --steps 10)
  train_args=(--synthetic-videos-per-class 12 --epochs 2 --max-steps 60)
fi

# ---- wheels and build: what every part needs ----
if compgen -G "$wheels/*.whl" > /dev/null; then
  if (( dry_run )); then
    skip wheels "dry run: the carried wheels are for the GPU machines' Python 3.12"
  elif step wheels 60 "$py" -m pip install -q --no-index --no-deps --no-compile --target "$work/site" "$wheels"/*.whl
  then
    export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
  fi
else
  skip wheels "no wheels in $wheels (bash benchmarks/gpu_wheels.sh download)"
fi
if (( dry_run )); then
  skip build "dry run: builds against the GPU machine's CUDA torch (here the installed extension is used)"
else
  arch=${TORCH_CUDA_ARCH_LIST:-$("$py" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())' \
    2>/dev/null)}
  step build 180 env TORCH_CUDA_ARCH_LIST="${arch:-9.0}" MAX_JOBS="$(nproc)" \
    "$py" -m pip install --no-build-isolation --no-deps -e .
fi
step info 30 "$py" -m jna_fast.info

# The small synthetic set is made on the CPU cores while the GPU parts run before the training.
if wanted train; then
  have_module av || skip synthetic_data "av (PyAV) missing: carry its wheel (bash benchmarks/gpu_wheels.sh download)"
  if have_module av; then
    step synthetic_data 150 "$py" -m jna_fast.train --dataset synthetic --root "$work/synthetic" "${train_args[@]}" \
      --max-steps 1 --epochs 1 --no-final-eval --no-progress --out "$work/warmup" &
    data_job=$!
  fi
fi

if wanted tests; then
  if (( dry_run )); then
    step gpu_tests 120 "$py" -m pytest tests -m cuda -q -p no:cacheprovider --collect-only
  else
    step gpu_tests 120 "$py" -m pytest tests -m cuda -q -p no:cacheprovider
  fi
fi

if wanted ops; then
  step copy_bandwidth 30 "$py" benchmarks/copy_bandwidth.py "${copy_args[@]}"
  copy_gbps=$(grep -oE 'copy [0-9.]+ GB/s' "$logs/copy_bandwidth.log" 2>/dev/null | grep -oE '[0-9.]+')
  step op_benchmarks 100 env JNA_FAST_BENCH_SHAPES=$shapes "${bench_env[@]}" \
    "$py" -m pytest benchmarks/bench_ops.py --benchmark-only --benchmark-json="$out/ops.json" -q -p no:cacheprovider
  [[ -f "$out/ops.json" ]] && step op_report 20 "$py" benchmarks/report.py "$out/ops.json" --markdown \
    ${copy_gbps:+--copy-gbps "$copy_gbps"} && cp "$logs/op_report.log" "$out/ops.md"
fi

if wanted throughput; then
  step throughput 90 "$py" benchmarks/throughput.py "${throughput_args[@]}" --json "$out/throughput.json"
fi

if wanted train; then
  if [[ -n "${data_job:-}" ]]; then
    wait "$data_job" || failures=$((failures + 1))
    step train 120 "$py" -m jna_fast.train --dataset synthetic --root "$work/synthetic" "${train_args[@]}" \
      --data-backend pyav --no-progress --out "$work/run"
    video=$(find "$work/synthetic" -type f -name '*.avi' 2>/dev/null | sort | head -n 1)
    if [[ -f "$work/run/last.pt" ]]; then
      step evaluate 60 "$py" -m jna_fast.evaluate "$work/run/last.pt" --out "$work/evaluation" --no-progress
      step predict 30 "$py" -m jna_fast.predict "$work/run/last.pt" "$video" --top-k 3
    else
      not_run evaluate predict "no checkpoint: the training run failed"
    fi
    tail -n 25 "$logs/train.log" "$logs/evaluate.log" "$logs/predict.log" > "$out/train.txt" 2>/dev/null
  else
    not_run train evaluate predict "no synthetic set: PyAV missing"
  fi
  have_module nvidia.dali || skip train_dali "DALI not installed: python -m jna_fast.train --data-backend dali"
  have_module nvidia.dali || skip loader "DALI not installed: python benchmarks/bench_loader.py"
fi

if wanted compile; then
  if (( dry_run )); then
    skip throughput_compile "dry run: compiling the two-stream step takes minutes on a 2-core CPU"
  else
    step throughput_compile 240 "$py" benchmarks/throughput.py "${throughput_args[@]}" --compile --backends cuda \
      triton --json "$out/throughput_compile.json"
  fi
fi

tar czf "$out/logs.tar.gz" -C "$work" logs
{
  echo "== $(date -u +%Y-%m-%dT%H:%MZ) $("$py" -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0)
    if torch.cuda.is_available() else "no CUDA device")' 2>&1), $(( $(date +%s) - started ))s," \
    "$failures step(s) failed$( (( dry_run )) && echo ' (dry run)')"
  tail -n 1 "$logs/gpu_tests.log" 2>/dev/null
  cat "$logs/copy_bandwidth.log" 2>/dev/null
  grep -E "fwd\+bwd" "$out/ops.md" 2>/dev/null | grep -E "\| (cuda|triton|cpp) \|"
  tail -n 6 "$logs/throughput.log" "$logs/throughput_compile.log" 2>/dev/null  # matmul peak, table
} >> "$summary"
cat "$summary"
(( failures == 0 ))
