// cuBLAS and cuDNN handles on the engine stream, and the row-major GEMM wrapper.
#include "kernels/cuda/handles.h"

#include <climits>

#include "engine/precision.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/runtime.h"

namespace ams::cuda {

bool tf32_enabled() { return precision() == Precision::TF32; }
bool bf16_enabled() { return precision() == Precision::BF16; }
bool tensor_math_enabled() { return precision() != Precision::FP32; }

cublasHandle_t cublas() {
    static cublasHandle_t h = [] {
        // Its workspace from the engine's pool, as PyTorch does: counted in memory_in_use and under
        // --max-memory, and never a cudaMalloc of cuBLAS's own failing later while the pool keeps
        // the freed memory. The sizes cuBLAS recommends (cublasSetWorkspace): 32 MiB on Hopper and
        // newer, 4 MiB before. Held for the life of the process, like the handle; allocated first,
        // so that a failure leaks no handle (the next call tries again).
        int dev = 0, major = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
        const size_t ws = (major >= 9 ? 32u : 4u) << 20;
        void* workspace = alloc(ws);
        cublasHandle_t x = nullptr;
        try {
            CUBLAS_CHECK(cublasCreate(&x));
            CUBLAS_CHECK(cublasSetStream(x, stream()));
            CUBLAS_CHECK(cublasSetWorkspace(x, workspace, ws));
        } catch (...) {
            if (x) cublasDestroy(x);
            free(workspace);
            throw;
        }
        return x;
    }();
    // Plain FP32 by default: results must match the CPU reference to ~1e-6 per product. The policy
    // may change between calls (set_precision), so the mode follows it.
    static int tf32_mode = -1;  // the mode last set: 0 default, 1 TF32, -1 none yet
    const int want = tf32_enabled() ? 1 : 0;
    if (tf32_mode != want) {
        CUBLAS_CHECK(cublasSetMathMode(h, want ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
        tf32_mode = want;
    }
    return h;
}

cudnnHandle_t cudnn() {
    static cudnnHandle_t h = [] {
        cudnnHandle_t x;
        CUDNN_CHECK(cudnnCreate(&x));
        CUDNN_CHECK(cudnnSetStream(x, stream()));
        return x;
    }();
    return h;
}

void sgemm_rm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              int64_t sa, const float* B, int64_t ldb, int64_t sb, float beta, float* C, int64_t ldc,
              int64_t sc, int64_t batch) {
    if (M == 0 || N == 0 || batch == 0) return;
    AMS_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX &&
                  ldc <= INT_MAX && batch <= INT_MAX,
              "sgemm: dimensions ", M, "x", N, "x", K, " exceed cuBLAS's int range");
    // cuBLAS is column-major; a row-major matrix is its column-major transpose, so the row-major
    // C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T: swap the operands, keep the flags.
    const cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (bf16_enabled())
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(cublas(), opb, opa, (int)N, (int)M, (int)K, &alpha, B, CUDA_R_32F,
                                                (int)ldb, (long long)sb, A, CUDA_R_32F, (int)lda, (long long)sa,
                                                &beta, C, CUDA_R_32F, (int)ldc, (long long)sc, (int)batch,
                                                CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT));
    else
        CUBLAS_CHECK(cublasSgemmStridedBatched(cublas(), opb, opa, (int)N, (int)M, (int)K, &alpha, B, (int)ldb,
                                               (long long)sb, A, (int)lda, (long long)sa, &beta, C, (int)ldc,
                                               (long long)sc, (int)batch));
    AMS_CUDA_LAUNCH_CHECK("cuBLAS sgemm");  // with AMS_CUDA_SYNC=1, a fault surfaces here
}

}  // namespace ams::cuda
