// Random masks on the GPU from the counter-based generator (engine/rng.h): element i draws with
// the same rule (rng::MaskRule) as the CPU path in engine/ops_mask.cpp, so the masks are bit-identical.
#include "engine/rng.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace ams::cuda {

namespace {

__global__ void mask_flags_kernel(float* m, int64_t n, rng::MaskRule rule) {
    AMS_GRID_STRIDE(i, n) m[i] = rule.hidden(i) ? 1.f : 0.f;
}

}  // namespace

void mask_flags(float* m, int64_t n, const rng::MaskRule& rule) {
    if (n <= 0) return;
    mask_flags_kernel<<<grid_for(n), kThreads, 0, stream()>>>(m, n, rule);
    AMS_CUDA_LAUNCH_CHECK("mask_flags");
}

}  // namespace ams::cuda
