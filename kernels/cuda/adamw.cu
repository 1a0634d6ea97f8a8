// AdamW on the flat parameter / gradient / moment buffers: one element per thread, the exact
// sequence of operations of kernels/cpu/adamw.cpp (bias corrections computed once on the host).
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace ams::cuda {

namespace {

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float bc1, float bc2) {
    AMS_GRID_STRIDE(i, n) {
        float pi = p[i], gi = g[i];
        pi -= lr * weight_decay * pi;  // decoupled weight decay
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        float mhat = mi / bc1, vhat = vi / bc2;
        pi -= lr * mhat / (sqrtf(vhat) + eps);
        p[i] = pi;
        m[i] = mi;
        v[i] = vi;
    }
}

}  // namespace

void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                float eps, float weight_decay, int64_t step) {
    if (n <= 0) return;
    const float bc1 = 1.0f - std::pow(beta1, (float)step);
    const float bc2 = 1.0f - std::pow(beta2, (float)step);
    adamw_kernel<<<grid_for(n), kThreads, 0, stream()>>>(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay,
                                                         bc1, bc2);
    AMS_CUDA_LAUNCH_CHECK("adamw_step");
}

}  // namespace ams::cuda
