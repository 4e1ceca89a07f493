#!/bin/bash
# One device session: build the library for Hopper, run the GPU test sweep, compute-sanitizer on a subset,
# and the benchmark. Usage (repo root): OUT=/some/dir trt_plugins/tools/gpu_check.sh [--compile]
set -u
OUT=${OUT:-/tmp/pgx-out}
mkdir -p "$OUT"
BUILD=/tmp/pgx-gpu-build
export PYTHONUNBUFFERED=1
cmake -S trt_plugins -B $BUILD -G Ninja -DPOLYGRAPHY_EXT_CUDA_ARCHITECTURES=${ARCHS:-90-real} >"$OUT/build.log" 2>&1 \
  && cmake --build $BUILD >>"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
LIB=$BUILD/libpolygraphy_ext_plugins.so
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
if [ -z "${SKIP_TESTS:-}" ]; then
  POLYGRAPHY_EXT_PLUGIN_LIBRARY=$LIB timeout ${TEST_TIMEOUT:-200} python3 -m pytest -q -p no:cacheprovider tests/plugins/test_plugin_gpu.py \
    --maxfail=20 --timeout 120 2>&1 | tail -40 | tee "$OUT/pytest.log"
fi
if [ -z "${SKIP_BENCH:-}" ]; then
  timeout ${BENCH_TIMEOUT:-200} python3 bench/plugins.py --library $LIB --out "$OUT" "$@" 2>&1 | tail -60
fi
if [ -z "${SKIP_SANITIZER:-}" ]; then
  for tool in memcheck racecheck; do
    timeout ${SANITIZER_TIMEOUT:-100} compute-sanitizer --tool $tool --error-exitcode 3 python3 trt_plugins/tools/sanitize_cases.py $LIB /tmp/san \
      >"$OUT/sanitizer_$tool.log" 2>&1
    echo "compute-sanitizer $tool rc=$?: $(tail -3 "$OUT/sanitizer_$tool.log" | tr '\n' ' ')"
  done
fi
