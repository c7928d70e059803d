#!/usr/bin/env bash
# The GPU check on a bare GPU machine (docs/PERFORMANCE.md, "The GPU check in one call"):
#
#   here, once:       make gpu-prepare      the wheels into .whl/ (checked against gpu_wheels.json) and llama.cpp's
#                                           source into .gpu-src/
#   first call:       bash benchmarks/gpu_check.sh "$OUT"            carry .whl        under 8 minutes on an H100
#   optional second:  bash benchmarks/gpu_check.sh llamacpp "$OUT"   carry .gpu-src: builds llama-cpp-python with
#                                                                    CUDA (about 7 minutes), then measures it
#
# The first installs the carried wheels into a folder of their own (the machine reaches no index) and runs
# benchmarks/gpu_check.py, which writes gpu_check.md, gpu_check.json, pytest.log and doctor.txt into OUT as each
# step ends; without CUDA it rehearses on the CPU (tests/test_gpu_check.py). BUDGET_S (default 420) bounds the
# measuring. The second writes build.log and llamacpp.txt.
set -u
part=check
if [ "${1:-}" = llamacpp ]; then part=llamacpp; shift; fi
out=${1:?usage: bash benchmarks/gpu_check.sh [llamacpp] OUT_FOLDER}
mkdir -p "$out"
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
site=${TASKCLOCK_GPU_SITE:-/tmp/taskclock-site}
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
wheels=$([ "$part" = check ] && echo .whl || echo .gpu-src)
if compgen -G "$wheels/*.whl" >/dev/null; then
    if "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        "$wheels"/*.whl >"$out/install.log" 2>&1; then
        export PYTHONPATH="$site:$PWD"
    else
        echo "the carried wheels did not install (install.log); going on with what this Python has" >&2
    fi
else
    echo "no $wheels/ here: using this Python's own packages" >"$out/install.log"
fi
if [ "$part" = check ]; then
    exec "$python" benchmarks/gpu_check.py "$out" --budget-s "${BUDGET_S:-420}"
fi
build=/tmp/taskclock-llamacpp
rm -rf "$build" && mkdir -p "$build" && tar -xzf .gpu-src/llama-cpp-python.tar.gz -C "$build" || exit 1
# scikit-build-core, cmake and ninja are on the machine: no build isolation, since no index can be reached
CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" \
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) timeout "${BUILD_S:-480}" \
    "$python" -m pip install -v --no-index --no-deps --no-build-isolation --no-cache-dir --target "$site" \
    "$build/llama-cpp-python" >"$out/build.log" 2>&1 || { echo "the CUDA build failed: build.log" >&2; exit 1; }
export PYTHONPATH="$site:$PWD"
exec "$python" benchmarks/gpu_llamacpp.py "$out"
