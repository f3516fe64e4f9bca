#!/usr/bin/env bash
# Wheels the lent GPU machines lack (they reach no registry): DALI for CUDA 13 with the nvidia-* libraries it
# needs, and PyAV. Two halves:
#
#   bash benchmarks/gpu_wheels.sh download [DIR]        # here, with network; DIR defaults to .gpu_wheels
#   bash benchmarks/gpu_wheels.sh install [DIR] [SITE]  # there; DIR defaults to $JNA_FAST_WHEELS or
#                                                       # /tmp/jna_fast_wheels, SITE to /tmp/site
#
# download fetches the wheels for the machines' Python (3.12, manylinux x86-64) with their dependencies, drops
# those the machines' image already has, records SHA256SUMS, cuts every wheel into parts of under 60 MiB and
# packs the parts into batches (DIR/batchNN/, each under 60 MiB: a device call carries at most 64 MiB, the
# working tree included, which leaves it 4 MiB). It prints one device call per batch -- carry DIR/batchNN, copy
# its files to /tmp/jna_fast_wheels -- to be made back to back while the machine stays warm (30 s after a
# call), then `bash benchmarks/gpu_session.sh`, which runs install first. DALI with its nvidia-* libraries and
# PyAV come to several batches.
# DIR must be ignored by git (.gitignore has /.gpu_wheels/) so that only `carry` moves it.
set -euo pipefail

DALI=nvidia-dali-cuda130==2.4.0
PYAV=av==18.1.0
PART_BYTES=$((59 * 1024 * 1024))
BATCH_BYTES=$((60 * 1024 * 1024))
# Already in the machines' image (/work/.library/device/KINDS.md, "Python packages already there"): not carried.
PRESENT="numpy packaging six typing_extensions pyyaml wheel"

download() {
  local dir=${1:-.gpu_wheels}
  rm -rf "$dir"
  mkdir -p "$dir/wheels"
  python3 -m pip download --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir/wheels" "$DALI" "$PYAV"
  local name project
  for name in $PRESENT; do
    for project in "$dir"/wheels/"$name"-*.whl; do
      [[ -e "$project" ]] && rm -- "$project"
    done
  done
  (cd "$dir/wheels" && sha256sum -- *.whl > SHA256SUMS)
  local whl batch=1 used=0 part size
  mkdir -p "$dir/batch01"
  cp "$dir/wheels/SHA256SUMS" "$dir/batch01/"
  for whl in "$dir"/wheels/*.whl; do
    split -b "$PART_BYTES" -d -a 2 -- "$whl" "$dir/wheels/$(basename "$whl").part"
    for part in "$dir/wheels/$(basename "$whl")".part*; do
      size=$(stat -c %s "$part")
      if (( used + size > BATCH_BYTES - 1024 * 1024 )); then
        batch=$((batch + 1))
        used=0
      fi
      mkdir -p "$dir/$(printf 'batch%02d' "$batch")"
      mv -- "$part" "$dir/$(printf 'batch%02d' "$batch")/"
      used=$((used + size))
    done
  done
  rm -rf "$dir/wheels"
  echo "wheels of $DALI and $PYAV in $(printf '%s ' "$dir"/batch*); device calls, back to back:"
  for batch in "$dir"/batch*; do
    echo "  run(carry=[\"$batch\"], command=\"mkdir -p /tmp/jna_fast_wheels && cp $batch/* /tmp/jna_fast_wheels/\")"
  done
  echo "  run(command=\"bash benchmarks/gpu_session.sh\", timeout_s=600)"
}

install() {
  local dir=${1:-${JNA_FAST_WHEELS:-/tmp/jna_fast_wheels}} site=${2:-/tmp/site}
  cd "$dir"
  local whl
  for whl in $(ls -- *.part* | sed 's/\.part[0-9]*$//' | sort -u); do
    cat -- "$whl".part* > "$whl"
  done
  sha256sum --check --quiet SHA256SUMS
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" ./*.whl
  echo "installed $(ls -- *.whl | wc -l) wheels into $site (add it to PYTHONPATH)"
}

case "${1:-}" in
  download) shift; download "$@" ;;
  install) shift; install "$@" ;;
  *) echo "usage: $0 download [DIR] | install [DIR] [SITE]" >&2; exit 2 ;;
esac
