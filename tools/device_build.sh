#!/usr/bin/env bash
# Configures and builds build-device/ on a lent GPU machine (CUDA, none of Debian's -dev packages):
# doctest and stb come from .devcarry/, which git ignores, so the device call must name it in
# `carry` (prepare it here: mkdir -p .devcarry && cp -r /usr/include/doctest /usr/include/stb
# .devcarry/). Sourced by device_check.sh and device_bench.sh; logs go to $out. BUILD_TARGETS
# limits what ninja builds (default: everything). Configures only once unless given cmake args.
build_device() {
    local f
    for f in .devcarry/doctest/doctest.h .devcarry/stb/stb_image.h; do
        [ -f "$f" ] || { echo "FAIL: $f is missing: name .devcarry in the device call's carry"; return 1; }
    done
    if [ ! -f build-device/build.ninja ] || [ $# -gt 0 ]; then
        # AMS_REQUIRE_CUDA: no silent CPU-only build when nvcc or cuDNN is not found.
        cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
            -DAMS_REQUIRE_CUDA=ON -DCMAKE_DISABLE_FIND_PACKAGE_BLAS=ON -DDOCTEST_INCLUDE_DIR="$PWD/.devcarry" \
            -DSTB_INCLUDE_DIR="$PWD/.devcarry/stb" "$@" > "$out/configure.log" 2>&1 ||
            { tail -30 "$out/configure.log"; echo "FAIL: configure"; return 1; }
    fi
    # cuDNN from PyTorch's wheel is not on the loader's path: its sub-libraries load from there.
    local cudnn
    cudnn=$(sed -n 's/^CUDNN_LIBRARY:FILEPATH=//p' build-device/CMakeCache.txt)
    [ -n "$cudnn" ] && export LD_LIBRARY_PATH="$(dirname "$cudnn")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # shellcheck disable=SC2086
    ninja -C build-device ${BUILD_TARGETS:-} > "$out/build.log" 2>&1 ||
        { grep -m 20 -E "error|FAILED" "$out/build.log"; echo "FAIL: build"; return 1; }
}
