// GDFN gate: y = gelu(x1) * x2 with x1, x2 the two channel halves; exact (erf) GELU.
#include <cmath>

#include "kernels/cpu/cpu.h"

namespace ams::cpu {

template <class T>
void gelu_gate_forward(const T* x, T* y, int64_t B, int64_t C, int64_t N) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c) {
            const T* x1 = x + (b * 2 * C + c) * N;
            const T* x2 = x1 + C * N;
            T* yp = y + (b * C + c) * N;
            for (int64_t i = 0; i < N; ++i) {
                T a = x1[i];
                yp[i] = T(0.5) * a * (T(1) + std::erf(a * T(M_SQRT1_2))) * x2[i];
            }
        }
}

// d x1 = dy * x2 * gelu'(x1), gelu'(a) = Phi(a) + a * phi(a);  d x2 = dy * gelu(x1)
template <class T>
void gelu_gate_backward(const T* x, const T* dy, T* dx, int64_t B, int64_t C, int64_t N) {
    const T inv_sqrt_2pi = T(0.3989422804014327);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c) {
            const T* x1 = x + (b * 2 * C + c) * N;
            const T* x2 = x1 + C * N;
            const T* g = dy + (b * C + c) * N;
            T* d1 = dx + (b * 2 * C + c) * N;
            T* d2 = d1 + C * N;
            for (int64_t i = 0; i < N; ++i) {
                T a = x1[i];
                T cdf = T(0.5) * (T(1) + std::erf(a * T(M_SQRT1_2)));
                T pdf = inv_sqrt_2pi * std::exp(T(-0.5) * a * a);
                d1[i] += g[i] * x2[i] * (cdf + a * pdf);
                d2[i] += g[i] * a * cdf;
            }
        }
}

template void gelu_gate_forward<float>(const float*, float*, int64_t, int64_t, int64_t);
template void gelu_gate_forward<double>(const double*, double*, int64_t, int64_t, int64_t);
template void gelu_gate_backward<float>(const float*, const float*, float*, int64_t, int64_t, int64_t);
template void gelu_gate_backward<double>(const double*, const double*, double*, int64_t, int64_t, int64_t);

}  // namespace ams::cpu
