#!/usr/bin/env bash
# GPU verification on a machine with CUDA but none of Debian's -dev packages (the lent H100/H200):
# builds with headers carried in .devcarry/ (doctest, stb), runs the GPU suites, then the GPU op
# suite under compute-sanitizer memcheck and racecheck. Logs go to $OUT (or ./device-logs).
#
# Prepare here:  mkdir -p .devcarry && cp -r /usr/include/doctest /usr/include/stb .devcarry/
# Run there:     bash tools/device_check.sh [extra cmake args]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-device-logs}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv | tee "$out/device.txt"
source tools/device_build.sh
build_device "$@" || exit 1
status=0
ctest --test-dir build-device -L gpu --output-on-failure 2>&1 | tee "$out/gpu-tests.log" | tail -25 || status=1
gpu_tests=build-device/tests/ams_gpu_tests
# Each sanitizer gets a time limit (SANITIZER_TIMEOUT seconds, default 200) so one slow tool cannot
# use up a device call of 10 minutes; exit 124 means it ran out of time.
for tool in memcheck racecheck; do
    timeout "${SANITIZER_TIMEOUT:-200}" compute-sanitizer --tool $tool --error-exitcode 99 $gpu_tests \
        --source-file='*test_gpu_ops.cpp' > "$out/$tool.log" 2>&1
    rc=$?
    [ $rc -eq 124 ] && echo "compute-sanitizer $tool: timed out after ${SANITIZER_TIMEOUT:-200} s"
    echo "compute-sanitizer $tool: exit $rc ($(grep -c 'ERROR SUMMARY: 0 errors' "$out/$tool.log") clean summaries)"
    [ $rc -eq 0 ] || { status=1; grep -m 20 -E "Invalid|Race|ERROR" "$out/$tool.log"; }
done
exit $status
