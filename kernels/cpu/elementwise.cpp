// Element-wise ops, broadcast mask multiply, dot product, channel concat and float32 <-> bfloat16.
#include <cstring>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/parallel.h"

namespace ams::cpu {

template <class T>
void axpby(const T* a, const T* b, T* y, int64_t n, T alpha, T beta) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] = alpha * a[i] + beta * b[i];
}

template <class T>
void accumulate(T* dst, const T* src, int64_t n, T alpha) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] += alpha * src[i];
}

template <class T>
void mask_mul(const T* x, const T* m, T* y, int64_t B, int64_t C, int64_t N, bool acc) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c) {
            const T* xp = x + (b * C + c) * N;
            const T* mp = m + b * N;
            T* yp = y + (b * C + c) * N;
            if (acc)
                for (int64_t i = 0; i < N; ++i) yp[i] += xp[i] * mp[i];
            else
                for (int64_t i = 0; i < N; ++i) yp[i] = xp[i] * mp[i];
        }
}

template <class T>
double dot(const T* a, const T* b, int64_t n) {
    return deterministic_sum(n, [&](int64_t i) { return (double)a[i] * (double)b[i]; });
}

template <class T>
void concat_forward(const T* a, const T* b, T* y, int64_t B, int64_t Ca, int64_t Cb, int64_t N) {
    for (int64_t n = 0; n < B; ++n) {
        std::memcpy(y + n * (Ca + Cb) * N, a + n * Ca * N, sizeof(T) * Ca * N);
        std::memcpy(y + (n * (Ca + Cb) + Ca) * N, b + n * Cb * N, sizeof(T) * Cb * N);
    }
}

template <class T>
void concat_backward(const T* dy, T* da, T* db, int64_t B, int64_t Ca, int64_t Cb, int64_t N) {
    for (int64_t n = 0; n < B; ++n) {
        if (da) accumulate(da + n * Ca * N, dy + n * (Ca + Cb) * N, Ca * N, T(1));
        if (db) accumulate(db + n * Cb * N, dy + (n * (Ca + Cb) + Ca) * N, Cb * N, T(1));
    }
}

// engine/dtype.cpp's float_to_bf16 written out so that it vectorises (a call per element took
// twice as long): NaN stays a quiet NaN, everything else rounds to nearest even.
void to_bf16(const float* x, uint16_t* y, int64_t n) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        uint32_t u;
        std::memcpy(&u, x + i, 4);
        y[i] = (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((u >> 16) | 0x40u)
                                               : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
}

void from_bf16(const uint16_t* x, float* y, int64_t n) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const uint32_t u = (uint32_t)x[i] << 16;
        std::memcpy(y + i, &u, 4);
    }
}

#define AMS_INST(T)                                                                           \
    template void axpby<T>(const T*, const T*, T*, int64_t, T, T);                            \
    template void accumulate<T>(T*, const T*, int64_t, T);                                    \
    template void mask_mul<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool);      \
    template double dot<T>(const T*, const T*, int64_t);                                      \
    template void concat_forward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t); \
    template void concat_backward<T>(const T*, T*, T*, int64_t, int64_t, int64_t, int64_t);
AMS_INST(float)
AMS_INST(double)
#undef AMS_INST

}  // namespace ams::cpu
