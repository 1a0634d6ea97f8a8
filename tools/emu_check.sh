#!/usr/bin/env bash
# The CUDA backend's logic without a GPU: builds build-emu/ with the CUDA code compiled for the host
# CUDA emulator (tests/cuda_emu: runtime, cuBLAS, cuDNN and the execution model on the CPU) and runs
# the GPU suites against it (ctest label `emu`, about 5 minutes on 2 cores). It checks indexing,
# launch configurations, barriers, library calls and accumulate semantics against the CPU
# reference; it says nothing about speed or real concurrency, and does not replace a GPU run.
#
# EMU_ASAN=1: the same under AddressSanitizer (build-emu-asan/), the emulator's stand-in for
# compute-sanitizer memcheck: every device allocation is its own heap block, so a kernel or library
# call that reads or writes past one is reported. The large-shape cases are left out (about 6
# minutes instead of over 20).
# Run tools/setup.sh first (the build dependencies); this adds python3 (translates the .cu files).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v python3 >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 >/dev/null
fi
if [ "${EMU_ASAN:-0}" = 1 ]; then
    dir=build-emu-asan
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS=-fsanitize=address -fno-omit-frame-pointer"
           "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address")
else
    dir=build-emu
    flags=(-DCMAKE_BUILD_TYPE=Release)
fi
mkdir -p "$dir"
cmake -S . -B "$dir" -G Ninja -DAMS_CUDA_EMU=ON "${flags[@]}" > "$dir/configure.log" 2>&1 ||
    { cat "$dir/configure.log"; exit 1; }
cmake --build "$dir" --target ams_gpu_tests
if [ "${EMU_ASAN:-0}" = 1 ]; then
    # Fibers switch stacks; ASan warns it may then report false positives (none seen so far).
    "$dir/tests/ams_gpu_tests" --subcase-exclude='big*,many rows*' 2>&1 | grep -v -E "makecontext|handle_no_return|False positive|sanitizers/issues/189"
else
    ctest --test-dir "$dir" -L emu --output-on-failure
fi
