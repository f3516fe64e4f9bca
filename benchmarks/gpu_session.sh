#!/usr/bin/env bash
# One call on a GPU machine: build against its CUDA torch, run the GPU tests, measure the copy-bandwidth
# ceiling, the fused ops against the reference, and model throughput. Everything lands in $OUT (default:
# gpu_results/); the last lines printed are the summary. The GPU machine has no DALI: the data tests skip it.
set -uo pipefail
out=${OUT:-gpu_results}
mkdir -p "$out"
python -m pip install -q pybind11 ninja cmake pytest pytest-benchmark > "$out/pip.log" 2>&1
if ! python -m pip install --no-build-isolation -e . > "$out/build.log" 2>&1; then
  tail -40 "$out/build.log"
  exit 1
fi
python -m jna_fast.info > "$out/info.txt" 2>&1
python -m pytest tests/test_ops_cuda.py tests/test_ops_triton.py tests/test_reference.py tests/test_backends.py \
  -q -p no:cacheprovider > "$out/tests.txt" 2>&1
tests_rc=$?
python benchmarks/copy_bandwidth.py > "$out/copy_bandwidth.txt" 2>&1
python -m pytest benchmarks/bench_ops.py --benchmark-only --benchmark-json="$out/ops.json" -q -p no:cacheprovider \
  > "$out/bench.log" 2>&1
python benchmarks/report.py "$out/ops.json" --markdown > "$out/ops.md" 2>&1
python benchmarks/throughput.py --json "$out/throughput.json" > "$out/throughput.txt" 2>&1
cat "$out/info.txt"
tail -3 "$out/tests.txt"
cat "$out/copy_bandwidth.txt"
grep -E "fwd\+bwd" "$out/ops.md" | grep -E "cuda|triton|reference_compiled"
tail -4 "$out/throughput.txt"
exit $tests_rc
