// Row-major GEMM through CBLAS (OpenBLAS) when available, else a plain loop (cache-friendly i-k-j).
#include <cstring>
#include <type_traits>

#include "kernels/cpu/cpu.h"
#ifdef AMS_HAVE_BLAS
#include <cblas.h>
#endif

namespace ams::cpu {

namespace {

template <class T>
void gemm_loops(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
#pragma omp parallel for schedule(static)
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

}  // namespace

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
    if (M == 0 || N == 0) return;
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

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);

}  // namespace ams::cpu
