#!/usr/bin/env bash
# The wheels a lent GPU machine lacks (it reaches no registry): PyAV, for the training step's loader and predict, and
# filelock (this project needs >= 4.3). Run here, with network:
#
#   bash benchmarks/gpu_wheels.sh download [DIR]    # DIR defaults to .gpu_wheels (ignored by git)
#
# It fetches them for the machines' Python (3.12, manylinux x86-64) and checks that they and the repository's
# tracked files fit in what one device call carries (64 MiB); then one call does everything:
#   run(carry=[".gpu_wheels"], command="bash benchmarks/gpu_session.sh", timeout_s=540)
# benchmarks/gpu_session.sh installs them first. DALI is not among them: its wheels are several hundred MiB.
set -euo pipefail

WHEELS=(av==18.1.0 filelock==4.3.2)
CARRY_LIMIT_BYTES=$((64 * 1024 * 1024))

download() {
  local dir=${1:-.gpu_wheels}
  rm -rf -- "$dir"
  mkdir -p -- "$dir"
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$dir" "${WHEELS[@]}"
  local wheels tracked
  wheels=$(du -cb -- "$dir"/*.whl | tail -n 1 | cut -f1)
  tracked=$(git ls-files -z | xargs -0 du -cb -- | tail -n 1 | cut -f1)
  echo "wheels: $((wheels >> 20)) MiB, tracked files: $((tracked >> 20)) MiB (a call carries 64 MiB)"
  if (( wheels + tracked > CARRY_LIMIT_BYTES )); then
    echo "error: $dir and the repository are over what one device call carries" >&2
    exit 1
  fi
  echo "then: run(carry=[\"$dir\"], command=\"bash benchmarks/gpu_session.sh\", timeout_s=540)"
}

case "${1:-}" in
  download) shift; download "$@" ;;
  *) echo "usage: $0 download [DIR]" >&2; exit 2 ;;
esac
