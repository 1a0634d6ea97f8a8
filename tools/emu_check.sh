#!/usr/bin/env bash
# The CUDA backend's logic without a GPU: builds build-emu/ with the CUDA code compiled for the host
# CUDA emulator (tests/cuda_emu: runtime, cuBLAS, cuDNN and the execution model on the CPU) and runs
# the GPU suites against it (ctest label `emu`, about 5 minutes on 2 cores). It checks indexing,
# launch configurations, barriers, library calls and accumulate semantics against the CPU
# reference; it says nothing about speed or real concurrency, and does not replace a GPU run.
# Run tools/setup.sh first (the build dependencies); this adds python3 (translates the .cu files).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v python3 >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 >/dev/null
fi
mkdir -p build-emu
cmake -S . -B build-emu -G Ninja -DCMAKE_BUILD_TYPE=Release -DAMS_CUDA_EMU=ON > build-emu/configure.log 2>&1 ||
    { cat build-emu/configure.log; exit 1; }
cmake --build build-emu --target ams_gpu_tests
ctest --test-dir build-emu -L emu --output-on-failure
