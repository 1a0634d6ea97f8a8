// AdamW (Loshchilov & Hutter): decoupled weight decay, bias-corrected moments, as torch.optim.AdamW.
#include <cmath>

#include "kernels/cpu/cpu.h"

namespace ams::cpu {

void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int64_t step) {
    const float bc1 = 1.0f - std::pow(beta1, (float)step);
    const float bc2 = 1.0f - std::pow(beta2, (float)step);
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        p[i] -= lr * weight_decay * p[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
        v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
        float mhat = m[i] / bc1, vhat = v[i] / bc2;
        p[i] -= lr * mhat / (std::sqrt(vhat) + eps);
    }
}

}  // namespace ams::cpu
