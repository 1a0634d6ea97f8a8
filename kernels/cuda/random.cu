// Random masks on the GPU from the counter-based generator (engine/rng.h): element i draws with
// the same window counter (rng::Window) as the CPU path in engine/ops_loss.cpp, so the masks are bit-identical.
#include "engine/rng.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace ams::cuda {

namespace {

__global__ void bernoulli_mask_kernel(float* m, int64_t n, float p, uint64_t seed, uint64_t stream_id,
                                      rng::Window g) {
    AMS_GRID_STRIDE(i, n) m[i] = rng::draw_uniform(seed, stream_id, g.counter(i)) < p ? 1.f : 0.f;
}

__global__ void branch_mask_kernel(float* m, int64_t n, uint32_t k, uint32_t branch, uint64_t seed,
                                   uint64_t stream_id, rng::Window g) {
    AMS_GRID_STRIDE(i, n) m[i] = rng::draw_below(seed, stream_id, g.counter(i), k) == branch ? 1.f : 0.f;
}

}  // namespace

void bernoulli_mask(float* m, int64_t n, double p, uint64_t seed, uint64_t stream_id, rng::Window g) {
    if (n <= 0) return;
    // (float)p: the CPU compares the float draw with (float)p too.
    bernoulli_mask_kernel<<<grid_for(n), kThreads, 0, stream()>>>(m, n, (float)p, seed, stream_id, g);
    AMS_CUDA_LAUNCH_CHECK("bernoulli_mask");
}

void branch_mask(float* m, int64_t n, int k, int branch, uint64_t seed, uint64_t stream_id, rng::Window g) {
    if (n <= 0) return;
    branch_mask_kernel<<<grid_for(n), kThreads, 0, stream()>>>(m, n, (uint32_t)k, (uint32_t)branch, seed, stream_id, g);
    AMS_CUDA_LAUNCH_CHECK("branch_mask");
}

}  // namespace ams::cuda
