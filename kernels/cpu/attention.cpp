// MDTA core ("transposed" attention over channels) on the CPU. Per image b and head h, with
// c = C/heads channels and N = H*W pixels:
//   qn = q / max(|q|, 1e-12), kn likewise (rows of length N); S = qn kn^T (c, c);
//   A = softmax_rows(S * temperature[h]); out = A v (c, N).
// The c x c products reduce over N and go through BLAS.
#include <algorithm>
#include <cmath>
#include <vector>

#include <omp.h>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/parallel.h"

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
#pragma omp simd reduction(+ : acc)
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
        if (!clamped) {
#pragma omp simd reduction(+ : proj)
            for (int64_t j = 0; j < N; ++j) proj += g[j] * y[j];
        }
        T inv = T(1) / norm[i];
        for (int64_t j = 0; j < N; ++j) d[j] += (g[j] - y[j] * proj) * inv;
    }
}
}  // namespace

// Scratch for one (image, head) pair, in the calling thread's reused buffers: fresh vectors (c x N
// floats, 16 MB for a 512x512 image) cost page faults and zero-filling on every call. Every element
// is written before it is read.
struct AttnScratch;
template <class T>
struct Buf {
    T* p;
    T* data() const { return p; }
    T& operator[](int64_t i) const { return p[i]; }
};
template <class T>
struct PairScratch {
    Buf<T> qn, kn, qnorm, knorm, dqn, dkn, dA, S;
    static Buf<T> slot(size_t i, int64_t n) { return {thread_scratch<AttnScratch, T>(i, n)}; }
    PairScratch(int64_t c, int64_t N, bool backward)
        : qn(slot(0, c * N)), kn(slot(1, c * N)), qnorm(slot(2, c)), knorm(slot(3, c)),
          dqn(backward ? slot(4, c * N) : Buf<T>{nullptr}), dkn(backward ? slot(5, c * N) : Buf<T>{nullptr}),
          dA(slot(6, c * c)), S(slot(7, c * c)) {}
};

// Runs body(pair, scratch, thread) over all B*heads pairs: pairs go to threads whole when there
// are enough of them (training on many PD sub-images), else run in order with the row loops and
// GEMMs inside parallel. (No `parallel if(false)`: libgomp would run the inner regions as slow
// nested teams.)
template <class T, class F>
void for_each_pair(int64_t pairs, int64_t c, int64_t N, bool backward, F&& body) {
    if (pairs >= omp_get_max_threads()) {
#pragma omp parallel
        {
            PairScratch<T> sc(c, N, backward);
#pragma omp for schedule(static)
            for (int64_t bh = 0; bh < pairs; ++bh) body(bh, sc, omp_get_thread_num());
        }
    } else {
        PairScratch<T> sc(c, N, backward);
        for (int64_t bh = 0; bh < pairs; ++bh) body(bh, sc, 0);
    }
}

template <class T>
void attention_forward(const T* qkv, const T* temperature, T* out, T* attn, int64_t B, int64_t C,
                       int64_t N, int heads) {
    const int64_t c = C / heads;
    for_each_pair<T>(B * heads, c, N, false, [&](int64_t bh, PairScratch<T>& sc, int) {
        const int64_t b = bh / heads;
        const int h = (int)(bh % heads);
        const T* q = qkv + (b * 3 * C + h * c) * N;
        const T* k = q + C * N;
        const T* v = q + 2 * C * N;
        T* A = attn + bh * c * c;
        normalize_rows(q, sc.qn.data(), sc.qnorm.data(), c, N);
        normalize_rows(k, sc.kn.data(), sc.knorm.data(), c, N);
        gemm<T>(false, true, c, c, N, temperature[h], sc.qn.data(), N, sc.kn.data(), N, T(0), A, c);
        for (int64_t i = 0; i < c; ++i) {  // softmax over each row
            T* r = A + i * c;
            T mx = *std::max_element(r, r + c), sum = 0;
            for (int64_t j = 0; j < c; ++j) sum += (r[j] = std::exp(r[j] - mx));
            for (int64_t j = 0; j < c; ++j) r[j] /= sum;
        }
        gemm<T>(false, false, c, N, c, T(1), A, c, v, N, T(0), out + (b * C + h * c) * N, N);
    });
}

template <class T>
void attention_backward(const T* qkv, const T* temperature, const T* attn, const T* dout, T* dqkv,
                        T* dtemperature, int64_t B, int64_t C, int64_t N, int heads) {
    const int64_t c = C / heads;
    // d temperature sums over images: per-thread partials, added in thread order afterwards.
    std::vector<std::vector<T>> dtemp_part(omp_get_max_threads(), std::vector<T>(heads, T(0)));
    for_each_pair<T>(B * heads, c, N, true, [&](int64_t bh, PairScratch<T>& sc, int thread) {
        const int64_t b = bh / heads;
        const int h = (int)(bh % heads);
        const T* q = qkv + (b * 3 * C + h * c) * N;
        const T* k = q + C * N;
        const T* v = q + 2 * C * N;
        const T* A = attn + bh * c * c;
        const T* g = dout + (b * C + h * c) * N;
        T* dA = sc.dA.data();
        // dA = dout v^T; dv += A^T dout
        gemm<T>(false, true, c, c, N, T(1), g, N, v, N, T(0), dA, c);
        if (dqkv) gemm<T>(true, false, c, N, c, T(1), A, c, g, N, T(1), dqkv + (b * 3 * C + 2 * C + h * c) * N, N);
        // softmax backward: dL_ij = A_ij (dA_ij - sum_k dA_ik A_ik)
        for (int64_t i = 0; i < c; ++i) {
            T s = 0;
            for (int64_t j = 0; j < c; ++j) s += dA[i * c + j] * A[i * c + j];
            for (int64_t j = 0; j < c; ++j) dA[i * c + j] = A[i * c + j] * (dA[i * c + j] - s);
        }
        normalize_rows(q, sc.qn.data(), sc.qnorm.data(), c, N);
        normalize_rows(k, sc.kn.data(), sc.knorm.data(), c, N);
        if (dtemperature) {  // d temperature = sum dL * (qn kn^T)
            gemm<T>(false, true, c, c, N, T(1), sc.qn.data(), N, sc.kn.data(), N, T(0), sc.S.data(), c);
            T acc = 0;
            for (int64_t i = 0; i < c * c; ++i) acc += dA[i] * sc.S[i];
            dtemp_part[thread][h] += acc;
        }
        if (!dqkv) return;
        // dS = dL * temperature; dqn = dS kn; dkn = dS^T qn
        gemm<T>(false, false, c, N, c, temperature[h], dA, c, sc.kn.data(), N, T(0), sc.dqn.data(), N);
        gemm<T>(true, false, c, N, c, temperature[h], dA, c, sc.qn.data(), N, T(0), sc.dkn.data(), N);
        normalize_rows_backward(sc.qn.data(), sc.dqn.data(), sc.qnorm.data(), dqkv + (b * 3 * C + h * c) * N, c, N);
        normalize_rows_backward(sc.kn.data(), sc.dkn.data(), sc.knorm.data(), dqkv + (b * 3 * C + C + h * c) * N, c, N);
    });
    if (dtemperature)
        for (const auto& p : dtemp_part)
            for (int h = 0; h < heads; ++h) dtemperature[h] += p[h];
}

#define AMS_INST(T)                                                                                \
    template void attention_forward<T>(const T*, const T*, T*, T*, int64_t, int64_t, int64_t, int); \
    template void attention_backward<T>(const T*, const T*, const T*, const T*, T*, T*, int64_t,   \
                                        int64_t, int64_t, int);
AMS_INST(float)
AMS_INST(double)
#undef AMS_INST

}  // namespace ams::cpu
