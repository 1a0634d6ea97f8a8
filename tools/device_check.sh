#!/usr/bin/env bash
# GPU verification on a machine with CUDA but none of Debian's -dev packages (the lent H100/H200):
# builds with the headers carried in .devcarry/, runs the GPU suites (a missing or unusable GPU is
# a failure here, not a skip), then the GPU op suite under compute-sanitizer memcheck and
# racecheck side by side. Everything stays inside CHECK_SECONDS (default 540) so one device call
# of 10 minutes holds it. Logs (6 files, 7 after a failure) go to $OUT (or ./device-logs); the last line says PASS or FAIL.
#
# Prepare here:  mkdir -p .devcarry && cp -r /usr/include/doctest /usr/include/stb .devcarry/
# Run there:     set -o pipefail; bash tools/device_check.sh 2>&1 | tee $OUT/check.log   (carry .devcarry)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-device-logs}
mkdir -p "$out"
deadline=$((SECONDS + ${CHECK_SECONDS:-540}))
left() { local l=$((deadline - SECONDS)); echo $((l > 1 ? l : 1)); }  # timeout 0 would mean no limit
{
    nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv
    echo "nvcc: $(nvcc --version 2>&1 | tail -1)"
    echo "g++: $(g++ --version 2>&1 | head -1); cmake: $(cmake --version 2>&1 | head -1)"
    echo "compute-sanitizer: $(command -v compute-sanitizer || echo MISSING)"
    ldconfig -p | grep -E 'libcudnn\.so|libcublas\.so' | head -4
    python3 -c "import nvidia.cudnn as m; print('cuDNN wheel:', list(m.__path__)[0])" 2>&1 | tail -1
} 2>&1 | tee "$out/device.txt"
source tools/device_build.sh
BUILD_TARGETS="amsnet ams_gpu_tests" build_device "$@" || { echo "FAIL"; exit 1; }
echo "built in ${SECONDS} s"
export AMS_REQUIRE_GPU=1  # tests/gpu/main.cpp: no usable GPU fails instead of skipping
gpu_tests_bin=build-device/tests/ams_gpu_tests
status=0
timeout -k 10 "$(left)" ctest --test-dir build-device -L gpu --timeout 200 --output-on-failure \
    > "$out/gpu-tests.log" 2>&1 || status=1
tail -30 "$out/gpu-tests.log"
grep -q -E "Skipped|Not Run|No tests were found" "$out/gpu-tests.log" && { echo "FAIL: GPU tests skipped or not run"; status=1; }
# A failure: run the GPU op suite again synchronising after every launch (AMS_CUDA_SYNC=1), so an
# asynchronous error names the kernel that caused it (gpu-sync.log, a seventh file).
if [ $status -ne 0 ] && [ "$(left)" -gt 200 ]; then
    AMS_CUDA_SYNC=1 timeout -k 10 120 $gpu_tests_bin --source-file='*test_gpu_ops.cpp' > "$out/gpu-sync.log" 2>&1
    echo "rerun with AMS_CUDA_SYNC=1: exit $? (gpu-sync.log)"
    grep -m 10 -E "ERROR|error|FAILED|failed" "$out/gpu-sync.log"
fi
# Both sanitizers at once (the machine has cores to spare), each bounded by what time is left.
budget=$(($(left) - 15))
[ "$budget" -gt "${SANITIZER_TIMEOUT:-400}" ] && budget=${SANITIZER_TIMEOUT:-400}
if [ "$budget" -lt 30 ]; then
    echo "FAIL: no time left for compute-sanitizer"
    status=1
else
    declare -A pid
    for tool in memcheck racecheck; do
        timeout -k 10 "$budget" compute-sanitizer --tool $tool --error-exitcode 99 $gpu_tests_bin \
            --source-file='*test_gpu_ops.cpp' > "$out/$tool.log" 2>&1 &
        pid[$tool]=$!
    done
    for tool in memcheck racecheck; do
        wait "${pid[$tool]}"
        rc=$?
        # memcheck ends with "ERROR SUMMARY: 0 errors", racecheck with "RACECHECK SUMMARY: 0 hazards".
        clean=$(grep -c -E "ERROR SUMMARY: 0 errors|RACECHECK SUMMARY: 0 hazards" "$out/$tool.log")
        echo "compute-sanitizer $tool: exit $rc ($clean clean summaries)"
        [ $rc -eq 124 ] && echo "  timed out after $budget s"
        grep -q "Device not supported" "$out/$tool.log" && echo "  compute-sanitizer does not support this device (gVisor?)"
        [ $rc -eq 0 ] || { status=1; grep -m 20 -E "Invalid|Race|ERROR|hazard" "$out/$tool.log"; }
    done
fi
[ $status -eq 0 ] && echo "PASS (${SECONDS} s)" || echo "FAIL (${SECONDS} s)"
exit $status
