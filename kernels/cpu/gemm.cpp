// Row-major GEMM: single-threaded CBLAS (OpenBLAS) calls, or a plain i-k-j loop without BLAS, split
// over the OpenMP threads here. Float products first round their operands as the GPU's precision
// policy would (engine/precision.h).
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include <omp.h>

#include "engine/precision.h"
#include "kernels/cpu/cpu.h"
#ifdef AMS_HAVE_BLAS
#include <cblas.h>
extern "C" void openblas_set_num_threads(int);  // OpenBLAS extension (BLA_VENDOR OpenBLAS)
#endif

namespace ams::cpu {

namespace {

template <class T>
[[maybe_unused]] void gemm_loops(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
    for (int64_t i = 0; i < M; ++i) {
        T* c = C + i * ldc;
        if (beta == T(0)) std::memset(c, 0, sizeof(T) * N);
        else if (beta != T(1)) for (int64_t j = 0; j < N; ++j) c[j] *= beta;
        for (int64_t k = 0; k < K; ++k) {
            T a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);
            if (!tb) {
                const T* b = B + k * ldb;
                for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
            } else {
                for (int64_t j = 0; j < N; ++j) c[j] += a * B[j * ldb + k];
            }
        }
    }
}

template <class T>
void gemm_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                 const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
#ifdef AMS_HAVE_BLAS
    auto opA = ta ? CblasTrans : CblasNoTrans, opB = tb ? CblasTrans : CblasNoTrans;
    if constexpr (std::is_same_v<T, float>)
        cblas_sgemm(CblasRowMajor, opA, opB, (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb,
                    beta, C, (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, opA, opB, (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb,
                    beta, C, (int)ldc);
#else
    gemm_loops(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

#ifdef AMS_HAVE_BLAS
// BLAS runs single-threaded inside our OpenMP threads: one thread pool for the whole engine, so
// BLAS and OpenMP threads never spin against each other on the same cores.
const bool g_blas_single = [] {
    openblas_set_num_threads(1);
    return true;
}();
#endif

// Splits the product across the OpenMP threads: by columns when N is wide, by rows when M is tall,
// else over K with per-thread partial products added in thread order (deterministic).
template <class T>
void gemm_split(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
    const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    const int64_t work = M * N * K;
    if (nt == 1 || work < (1 << 18)) return gemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (N >= 64 * nt) {
        const int64_t chunk = ((N + nt - 1) / nt + 15) / 16 * 16;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int t = 0; t < nt; ++t) {
            int64_t n0 = t * chunk, n1 = std::min(N, n0 + chunk);
            if (n0 >= n1) continue;
            const T* Bt = tb ? B + n0 * ldb : B + n0;
            gemm_serial(ta, tb, M, n1 - n0, K, alpha, A, lda, Bt, ldb, beta, C + n0, ldc);
        }
    } else if (M >= 16 * nt) {
        const int64_t chunk = ((M + nt - 1) / nt + 7) / 8 * 8;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int t = 0; t < nt; ++t) {
            int64_t m0 = t * chunk, m1 = std::min(M, m0 + chunk);
            if (m0 >= m1) continue;
            const T* At = ta ? A + m0 : A + m0 * lda;
            gemm_serial(ta, tb, m1 - m0, N, K, alpha, At, lda, B, ldb, beta, C + m0 * ldc, ldc);
        }
    } else {
        std::vector<std::vector<T>> part(nt, std::vector<T>((size_t)(M * N)));
        const int64_t chunk = (K + nt - 1) / nt;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int t = 0; t < nt; ++t) {
            int64_t k0 = t * chunk, k1 = std::min(K, k0 + chunk);
            if (k0 >= k1) continue;
            const T* At = ta ? A + k0 * lda : A + k0;
            const T* Bt = tb ? B + k0 : B + k0 * ldb;
            gemm_serial(ta, tb, M, N, k1 - k0, alpha, At, lda, Bt, ldb, T(0), part[t].data(), N);
        }
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                T acc = beta == T(0) ? T(0) : beta * C[i * ldc + j];
                for (int t = 0; t < nt; ++t)
                    if (t * chunk < K) acc += part[t][i * N + j];
                C[i * ldc + j] = acc;
            }
    }
}

// Copies rows x cols of a row-major matrix (leading dimension ld) to a dense buffer, rounded.
void copy_rounded(const float* src, int64_t rows, int64_t cols, int64_t ld, int bits, std::vector<float>& dst) {
    dst.resize((size_t)(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) dst[(size_t)(r * cols + c)] = round_mantissa(src[r * ld + c], bits);
}

}  // namespace

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc, GemmKind kind) {
    if (M == 0 || N == 0) return;
    int bits = 23;
    if constexpr (std::is_same_v<T, float>)
        bits = kind == GemmKind::Conv ? conv_mantissa_bits() : product_mantissa_bits();
    if (bits >= 23 || K == 0) return gemm_split(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if constexpr (std::is_same_v<T, float>) {
        // Rounded copies in blocks of at most kBlock elements per operand (a 4K photo's attention
        // has K = 8 million): K in blocks of kc, accumulated in order (beta, then 1), and the
        // output columns in blocks of nb. Every element is rounded once; the blocks depend only on
        // the shape (deterministic).
        constexpr int64_t kBlock = int64_t(1) << 22;
        const int64_t kc = std::clamp<int64_t>(kBlock / M, 1, K), nb = std::clamp<int64_t>(kBlock / kc, 1, N);
        std::vector<float> a, b;
        for (int64_t k0 = 0; k0 < K; k0 += kc) {
            const int64_t kb = std::min(kc, K - k0);
            if (ta) copy_rounded(A + k0 * lda, kb, M, lda, bits, a);  // op(A)[:, k0:] = rows k0.. of A (K, M)
            else copy_rounded(A + k0, M, kb, lda, bits, a);
            for (int64_t n0 = 0; n0 < N; n0 += nb) {
                const int64_t nbb = std::min(nb, N - n0);
                if (tb) copy_rounded(B + n0 * ldb + k0, nbb, kb, ldb, bits, b);  // B is (N, K)
                else copy_rounded(B + k0 * ldb + n0, kb, nbb, ldb, bits, b);
                gemm_split(ta, tb, M, nbb, kb, alpha, a.data(), ta ? M : kb, b.data(), tb ? kb : nbb,
                           k0 == 0 ? beta : 1.0f, C + n0, ldc);
            }
        }
    }
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t, GemmKind);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t, GemmKind);

}  // namespace ams::cpu
