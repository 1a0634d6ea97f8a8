// Per-op benchmark for `amsnet bench --what kernels`: every op the Restormer and AMSNet use, forward
// and backward, at the shapes the model meets at level 1 (its widest) in training (crop 160, PD 5,
// batch 2: 50 sub-images of 32x32) and in inference (256x256, PD 2: 4 of 128x128).
#pragma once
#include <functional>
#include <string>

#include "engine/dtype.h"
#include "models/restormer.h"

namespace ams::cli {

struct KernelResult {
    std::string op, shape, pass;  // pass: "forward" or "backward"
    double ms = 0;                // median, L2 flushed before each run (GPU)
    double bytes = 0, flops = 0;  // minimum traffic and arithmetic of the pass
};

// Runs every case; `report` gets each result as it is measured.
void bench_kernels(const RestormerConfig& cfg, Device dev, int warmup, int repeat,
                   const std::function<void(const KernelResult&)>& report);

// Median milliseconds of `repeat` runs of f after `warmup` untimed ones: CUDA events around each
// run on the GPU (L2 flushed before it), wall clock on the CPU. Every bench figure is timed so.
// (`prepare`, when given, runs untimed before each run, warm-up ones included.)
double median_ms(Device dev, int warmup, int repeat, const std::function<void()>& f,
                 const std::function<void()>& prepare = {});

// The yardstick for memory-bound kernels: device-to-device (GPU) or memcpy (CPU) bandwidth in
// GB/s, counting bytes read + written.
double measure_copy_bandwidth(Device dev);

}  // namespace ams::cli
