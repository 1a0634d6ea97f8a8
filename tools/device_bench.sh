#!/usr/bin/env bash
# The performance issue's measurements on a lent GPU machine, one stage per argument:
#   ours     amsnet bench --what suite and --what kernels (JSON)
#   24gb     a 3090's budget as a hard limit (--max-memory 24): SPEC's batch-8 training step and the
#            3840x2160 photo with R^3 x8 (JSON); a row that completes fits 24 GB
#   eager    the reference PyTorch AMSNet (tools/bench_reference.py), eager
#   compile  the same with torch.compile (slow to start: compiles every shape)
# then the comparison table (tools/bench_compare.py) from whatever JSON is there.
# Prepare here:  mkdir -p .devcarry && cp -r /usr/include/doctest /usr/include/stb .devcarry/
#                mkdir -p .devcarry/amsnet-ref && git --git-dir=<lll143653/amsnet mirror> archive HEAD codes LICENSE | tar x -C .devcarry/amsnet-ref
# Run there:     bash tools/device_bench.sh ours eager    (PRECISION=fp32|tf32|bf16, default fp32; carry
#                .devcarry). Give `compile` its own call: torch.compile alone may take minutes. Each
#                stage stops after STAGE_SECONDS (default 500) so a device call of 10 minutes holds it.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-device-logs}
mkdir -p "$out"
precision=${PRECISION:-fp32}
ref=.devcarry/amsnet-ref
source tools/device_build.sh
status=0
for stage in "$@"; do
    case $stage in
    ours)
        BUILD_TARGETS=amsnet build_device || exit 1
        timeout -k 10 "${STAGE_SECONDS:-500}" build-device/amsnet bench --what suite --device cuda --warmup 3 \
            --repeat 10 --precision "$precision" --json > "$out/suite.json" || status=1
        timeout -k 10 "${STAGE_SECONDS:-500}" build-device/amsnet bench --what kernels --device cuda --warmup 3 \
            --repeat 20 --precision "$precision" --json > "$out/kernels.json" || status=1
        ;;
    24gb)
        BUILD_TARGETS=amsnet build_device || exit 1
        for what in "train-step --batch 8" "infer --size 3840x2160 --r3 8"; do
            timeout -k 10 "${STAGE_SECONDS:-500}" build-device/amsnet bench --what $what --device cuda --warmup 1 \
                --repeat 3 --max-memory 24 --precision "$precision" --json >> "$out/budget_24gb.json" || status=1
        done
        ;;
    eager | compile)
        flag=; [ $stage = compile ] && flag=--compile
        [ -d "$ref/codes" ] || { echo "FAIL: $ref/codes is missing: carry .devcarry (see the top of this script)"; exit 1; }
        PYTHONUNBUFFERED=1 timeout -k 10 "${STAGE_SECONDS:-500}" python3 tools/bench_reference.py --amsnet-src "$ref" \
            --device cuda --precision "$precision" $flag > "$out/torch_$stage.json" 2> "$out/torch_$stage.log" ||
            { status=1; tail -5 "$out/torch_$stage.log"; }
        ;;
    *) echo "device_bench.sh: unknown stage '$stage' (ours, 24gb, eager or compile)"; exit 2 ;;
    esac
done
refs=
for f in "$out"/torch_eager.json "$out"/torch_compile.json; do [ -s "$f" ] && refs="$refs $f"; done  # not empty ones
[ -s "$out/suite.json" ] && python3 tools/bench_compare.py "$out/suite.json" $refs | tee "$out/compare.md"
exit $status
