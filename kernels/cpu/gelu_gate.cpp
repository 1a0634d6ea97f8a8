// GDFN gate: y = gelu(x1) * x2 with x1, x2 the two channel halves; exact (erf) GELU.
#include <bit>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/cpu.h"

namespace ams::cpu {

namespace {

// A libm call per element kept these loops scalar (erff was a fifth of CPU inference). The float
// path uses branch-free forms that vectorise; double keeps the libm functions, the exact reference.

// exp(v) for v <= 0: v = n ln2 + r with |r| <= ln2/2, exp(r) by its degree-6 Taylor polynomial
// (relative error < 2e-7), 2^n built in the exponent bits. Flushes to 0 below -87.
inline float exp_nonpositive(float v) {
    v = v < -87.0f ? -87.0f : v;
    const int32_t n = (int32_t)(v * 1.44269504f - 0.5f);  // round to nearest, v <= 0
    const float r = (v - (float)n * 0.693145751953125f) - (float)n * 1.428606765330187e-06f;  // ln2 in two parts
    const float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    return p * std::bit_cast<float>((n + 127) << 23);
}

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7 absolute).
inline float erf_fast(float x) {
    const float a = std::fabs(x), t = 1.0f / (1.0f + 0.3275911f * a);
    const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    return std::copysign(1.0f - poly * exp_nonpositive(-a * a), x);
}

inline float erf_(float x) { return erf_fast(x); }
inline double erf_(double x) { return std::erf(x); }
inline float exp_neg_half_sq(float a) { return exp_nonpositive(-0.5f * a * a); }
inline double exp_neg_half_sq(double a) { return std::exp(-0.5 * a * a); }

}  // namespace

template <class T>
void gelu_gate_forward(const T* x, T* y, int64_t B, int64_t C, int64_t N) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c) {
            const T* x1 = x + (b * 2 * C + c) * N;
            const T* x2 = x1 + C * N;
            T* yp = y + (b * C + c) * N;
#pragma omp simd
            for (int64_t i = 0; i < N; ++i) {
                T a = x1[i];
                yp[i] = T(0.5) * a * (T(1) + erf_(a * T(M_SQRT1_2))) * x2[i];
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
#pragma omp simd
            for (int64_t i = 0; i < N; ++i) {
                T a = x1[i];
                T cdf = T(0.5) * (T(1) + erf_(a * T(M_SQRT1_2)));
                T pdf = inv_sqrt_2pi * exp_neg_half_sq(a);
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
