#!/usr/bin/env bash
# Configures and builds build-device/ on a lent GPU machine (CUDA, none of Debian's -dev packages):
# doctest and stb come from .devcarry/ (mkdir -p .devcarry && cp -r /usr/include/doctest
# /usr/include/stb .devcarry/). Sourced by device_check.sh and device_bench.sh; logs go to $out.
build_device() {
    [ -x build-device/amsnet ] && ninja -C build-device > "$out/build.log" 2>&1 && return 0
    cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DCMAKE_DISABLE_FIND_PACKAGE_BLAS=ON -DDOCTEST_INCLUDE_DIR="$PWD/.devcarry" \
        -DSTB_INCLUDE_DIR="$PWD/.devcarry/stb" "$@" > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; return 1; }
    ninja -C build-device > "$out/build.log" 2>&1 || { grep -m 20 -E "error|FAILED" "$out/build.log"; return 1; }
}
