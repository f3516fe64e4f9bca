#!/usr/bin/env bash
# One call on a GPU machine: build against its CUDA torch, run the GPU tests, measure the copy-bandwidth
# ceiling, the fused ops against the reference, and model throughput. Everything lands in $OUT (default:
# gpu_results/); the last lines printed are the summary. The lent GPU machines reach no registry but ship
# torch, triton, CMake, ninja, pybind11 and pytest-benchmark under `python3`, so the build takes their torch
# (--no-build-isolation) and installs nothing else (--no-deps). They have no DALI: the data tests are not run.
set -uo pipefail
out=${OUT:-gpu_results}
mkdir -p "$out"
if ! python3 -m pip install --no-build-isolation --no-deps -e . > "$out/build.log" 2>&1; then
  tail -40 "$out/build.log"
  exit 1
fi
python3 -m jna_fast.info > "$out/info.txt" 2>&1
python3 -m pytest tests/test_ops_cuda.py tests/test_ops_triton.py tests/test_reference.py tests/test_backends.py \
  -q -p no:cacheprovider > "$out/tests.txt" 2>&1
tests_rc=$?
python3 benchmarks/copy_bandwidth.py > "$out/copy_bandwidth.txt" 2>&1
python3 -m pytest benchmarks/bench_ops.py --benchmark-only --benchmark-json="$out/ops.json" -q -p no:cacheprovider \
  > "$out/bench.log" 2>&1
python3 benchmarks/report.py "$out/ops.json" --markdown > "$out/ops.md" 2>&1
python3 benchmarks/throughput.py --json "$out/throughput.json" > "$out/throughput.txt" 2>&1
cat "$out/info.txt"
tail -3 "$out/tests.txt"
cat "$out/copy_bandwidth.txt"
grep -E "fwd\+bwd" "$out/ops.md" | grep -E "cuda|triton|reference_compiled"
tail -4 "$out/throughput.txt"
exit $tests_rc
