// MDTA core ("transposed" attention over channels) on the CPU. Per image b and head h, with
// c = C/heads channels and N = H*W pixels:
//   qn = q / max(|q|, 1e-12), kn likewise (rows of length N); S = qn kn^T (c, c);
//   A = softmax_rows(S * temperature[h]); out = A v (c, N).
// The c x c products reduce over N and go through BLAS.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu.h"

namespace ams::cpu {

namespace {
constexpr double kNormEps = 1e-12;  // F.normalize's eps

// Row norms of src (c, N), clamped below by eps; dst = src / norm.
template <class T>
void normalize_rows(const T* src, T* dst, T* norm, int64_t c, int64_t N) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < c; ++i) {
        const T* r = src + i * N;
        T acc = 0;
        for (int64_t j = 0; j < N; ++j) acc += r[j] * r[j];
        T nrm = std::max<T>(std::sqrt(acc), T(kNormEps));
        norm[i] = nrm;
        T inv = T(1) / nrm;
        for (int64_t j = 0; j < N; ++j) dst[i * N + j] = r[j] * inv;
    }
}

// d(src) += (d(dst) - dst * <d(dst), dst>) / norm when the norm was not clamped, else d(dst)/eps.
template <class T>
void normalize_rows_backward(const T* dst, const T* ddst, const T* norm, T* dsrc, int64_t c, int64_t N) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < c; ++i) {
        const T* y = dst + i * N;
        const T* g = ddst + i * N;
        T* d = dsrc + i * N;
        bool clamped = norm[i] <= T(kNormEps);
        T proj = 0;
        if (!clamped)
            for (int64_t j = 0; j < N; ++j) proj += g[j] * y[j];
        T inv = T(1) / norm[i];
        for (int64_t j = 0; j < N; ++j) d[j] += (g[j] - y[j] * proj) * inv;
    }
}
}  // namespace

template <class T>
void attention_forward(const T* qkv, const T* temperature, T* out, T* attn, int64_t B, int64_t C,
                       int64_t N, int heads) {
    const int64_t c = C / heads;
    std::vector<T> qn(c * N), kn(c * N), qnorm(c), knorm(c);
    for (int64_t b = 0; b < B; ++b)
        for (int h = 0; h < heads; ++h) {
            const T* q = qkv + (b * 3 * C + h * c) * N;
            const T* k = q + C * N;
            const T* v = q + 2 * C * N;
            T* A = attn + (b * heads + h) * c * c;
            normalize_rows(q, qn.data(), qnorm.data(), c, N);
            normalize_rows(k, kn.data(), knorm.data(), c, N);
            gemm<T>(false, true, c, c, N, temperature[h], qn.data(), N, kn.data(), N, T(0), A, c);
            for (int64_t i = 0; i < c; ++i) {  // softmax over each row
                T* r = A + i * c;
                T mx = *std::max_element(r, r + c), sum = 0;
                for (int64_t j = 0; j < c; ++j) sum += (r[j] = std::exp(r[j] - mx));
                for (int64_t j = 0; j < c; ++j) r[j] /= sum;
            }
            gemm<T>(false, false, c, N, c, T(1), A, c, v, N, T(0), out + (b * C + h * c) * N, N);
        }
}

template <class T>
void attention_backward(const T* qkv, const T* temperature, const T* attn, const T* dout, T* dqkv,
                        T* dtemperature, int64_t B, int64_t C, int64_t N, int heads) {
    const int64_t c = C / heads;
    std::vector<T> qn(c * N), kn(c * N), qnorm(c), knorm(c), dqn(c * N), dkn(c * N);
    std::vector<T> dA(c * c), S(c * c);
    for (int64_t b = 0; b < B; ++b)
        for (int h = 0; h < heads; ++h) {
            const T* q = qkv + (b * 3 * C + h * c) * N;
            const T* k = q + C * N;
            const T* v = q + 2 * C * N;
            const T* A = attn + (b * heads + h) * c * c;
            const T* g = dout + (b * C + h * c) * N;
            // dA = dout v^T; dv += A^T dout
            gemm<T>(false, true, c, c, N, T(1), g, N, v, N, T(0), dA.data(), c);
            if (dqkv) {
                T* dv = dqkv + (b * 3 * C + 2 * C + h * c) * N;
                gemm<T>(true, false, c, N, c, T(1), A, c, g, N, T(1), dv, N);
            }
            // softmax backward: dL_ij = A_ij (dA_ij - sum_k dA_ik A_ik)
            for (int64_t i = 0; i < c; ++i) {
                T s = 0;
                for (int64_t j = 0; j < c; ++j) s += dA[i * c + j] * A[i * c + j];
                for (int64_t j = 0; j < c; ++j) dA[i * c + j] = A[i * c + j] * (dA[i * c + j] - s);
            }
            normalize_rows(q, qn.data(), qnorm.data(), c, N);
            normalize_rows(k, kn.data(), knorm.data(), c, N);
            if (dtemperature) {  // d temperature = sum dL * (qn kn^T)
                gemm<T>(false, true, c, c, N, T(1), qn.data(), N, kn.data(), N, T(0), S.data(), c);
                T acc = 0;
                for (int64_t i = 0; i < c * c; ++i) acc += dA[i] * S[i];
                dtemperature[h] += acc;
            }
            if (!dqkv) continue;
            // dS = dL * temperature; dqn = dS kn; dkn = dS^T qn
            gemm<T>(false, false, c, N, c, temperature[h], dA.data(), c, kn.data(), N, T(0), dqn.data(), N);
            gemm<T>(true, false, c, N, c, temperature[h], dA.data(), c, qn.data(), N, T(0), dkn.data(), N);
            normalize_rows_backward(qn.data(), dqn.data(), qnorm.data(), dqkv + (b * 3 * C + h * c) * N, c, N);
            normalize_rows_backward(kn.data(), dkn.data(), knorm.data(), dqkv + (b * 3 * C + C + h * c) * N, c, N);
        }
}

#define AMS_INST(T)                                                                                \
    template void attention_forward<T>(const T*, const T*, T*, T*, int64_t, int64_t, int64_t, int); \
    template void attention_backward<T>(const T*, const T*, const T*, const T*, T*, T*, int64_t,   \
                                        int64_t, int64_t, int);
AMS_INST(float)
AMS_INST(double)
#undef AMS_INST

}  // namespace ams::cpu
