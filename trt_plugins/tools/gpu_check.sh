#!/bin/bash
# One device session: build the library for Hopper, run the GPU test sweep, compute-sanitizer (memcheck,
# racecheck) on a subset, the benchmark, and optionally Nsight Compute on a few benchmark cases. Writes at most 8 files.
# Usage (repo root): OUT=/some/dir [PROFILE="LayerNorm:fp16:1024 ..."] trt_plugins/tools/gpu_check.sh [bench options]
# SRC (default trt_plugins) and BUILD select another source tree and build folder. BASELINES="NAME=TREE ..." (other
# trt_plugins trees, e.g. the previous commit's or a variant) are built too and benchmarked side by side as contenders.
# SKIP_TESTS, SKIP_BENCH, SKIP_SANITIZER skip a step; *_TIMEOUT bound each. CMAKE_ARGS go to the main build (e.g.
# -DPOLYGRAPHY_EXT_TUNING=ON for bench/plugins.py --variants).
set -u
OUT=${OUT:-/tmp/pgx-out}
mkdir -p "$OUT"
SRC=${SRC:-trt_plugins}
BUILD=${BUILD:-/tmp/pgx-gpu-build}
export PYTHONUNBUFFERED=1
cmake -S "$SRC" -B $BUILD -G Ninja -DPOLYGRAPHY_EXT_CUDA_ARCHITECTURES=${ARCHS:-90-real} ${CMAKE_ARGS:-} \
  >"$OUT/build.log" 2>&1 \
  && cmake --build $BUILD >>"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
LIB=$BUILD/libpolygraphy_ext_plugins.so
BASELINE_ARGS=()
for spec in ${BASELINES:-}; do
  name=${spec%%=*}
  cmake -S "${spec#*=}" -B /tmp/pgx-build-$name -G Ninja -DPOLYGRAPHY_EXT_CUDA_ARCHITECTURES=${ARCHS:-90-real} \
    >>"$OUT/build.log" 2>&1 && cmake --build /tmp/pgx-build-$name >>"$OUT/build.log" 2>&1 \
    || { tail -40 "$OUT/build.log"; exit 1; }
  BASELINE_ARGS+=(--baseline $name=/tmp/pgx-build-$name/libpolygraphy_ext_plugins.so)
done
# Registers, shared memory and spills of every kernel as built (what occupancy follows from).
cuobjdump -res-usage $LIB >>"$OUT/build.log" 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/build.log"
if [ -z "${SKIP_TESTS:-}" ]; then
  POLYGRAPHY_EXT_PLUGIN_LIBRARY=$LIB timeout ${TEST_TIMEOUT:-200} python3 -m pytest -q -p no:cacheprovider tests/plugins/test_plugin_gpu.py \
    --maxfail=20 --timeout 120 >"$OUT/pytest.log" 2>&1
  tail -25 "$OUT/pytest.log"
fi
if [ -z "${SKIP_SANITIZER:-}" ]; then
  for tool in memcheck racecheck; do
    echo "== compute-sanitizer --tool $tool" >>"$OUT/sanitizer.log"
    timeout ${SANITIZER_TIMEOUT:-100} compute-sanitizer --tool $tool --error-exitcode 3 python3 trt_plugins/tools/sanitize_cases.py $LIB /tmp/san \
      >>"$OUT/sanitizer.log" 2>&1
    echo "compute-sanitizer $tool rc=$?: $(tail -2 "$OUT/sanitizer.log" | tr '\n' ' ')"
  done
fi
if [ -z "${SKIP_BENCH:-}" ]; then
  timeout ${BENCH_TIMEOUT:-300} python3 bench/plugins.py --library $LIB --out "$OUT" ${BASELINE_ARGS[@]+"${BASELINE_ARGS[@]}"} "$@" \
    >"$OUT/bench.log" 2>&1
  echo "bench rc=$?"
  grep -E "^\| (LayerNorm|SkipLayerNorm|RMSNorm|BiasGelu) \| (fp32|fp16|bf16) \| [0-9]" "$OUT/bench.log" | grep -v " | [0-9]* | " | head -20
  grep -E "WARNING|Error|error|behind" "$OUT/bench.log" | head -20
fi
if [ -n "${PROFILE:-}" ]; then
  # --clock-control none: profile at the clocks the card runs at, without touching its settings.
  timeout ${PROFILE_TIMEOUT:-150} ncu --clock-control none --section SpeedOfLight --section Occupancy \
    --section WarpStateStats --section MemoryWorkloadAnalysis --section LaunchStats -k 'regex:rowNorm|biasGelu' \
    python3 bench/plugins.py --library $LIB --profile $PROFILE >"$OUT/ncu.txt" 2>&1
  echo "ncu rc=$?"
  grep -E "profiled|rowNorm|biasGelu|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Duration" "$OUT/ncu.txt" | cut -c1-150
fi
