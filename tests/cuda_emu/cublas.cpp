// cuBLAS's strided-batched GEMM, written from its documentation (column-major):
//   C_i = alpha * op(A_i) op(B_i) + beta * C_i,  op(A_i) m x k, op(B_i) k x n, C_i m x n,
//   element (r, c) of a matrix with leading dimension ld at X[r + c * ld], X_i = X + i * stride,
//   beta == 0: C is not read. Leading dimensions are checked as cuBLAS checks them, and every
// matrix a product touches must lie inside one device allocation: a wrong ld, stride or operand
// order surfaces here as an error or a wrong result, never as a silent pass.
#include <cmath>
#include <cstring>
#include <string>

#include "cublas_v2.h"
#include "cuda_emu/state.h"

struct cuda_emu_cublas {
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace {

// Round to nearest even at `keep` mantissa bits (bfloat16: 7, TF32: 10).
float round_mantissa(float f, int keep) {
    if (!std::isfinite(f)) return f;
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const int drop = 23 - keep;
    const uint32_t half = 1u << (drop - 1), lsb = (x >> drop) & 1u;
    x = (x + half - 1 + lsb) & ~((1u << drop) - 1);
    std::memcpy(&f, &x, 4);
    return f;
}

// Why the last call failed; cublasGetStatusString appends it (cuBLAS sets no CUDA error).
std::string g_reason;

cublasStatus_t bad(const std::string& what) {
    g_reason = what;
    return CUBLAS_STATUS_INVALID_VALUE;
}

// The span in elements a column-major rows x cols matrix with leading dimension ld covers.
long long span(long long rows, long long cols, long long ld) { return rows == 0 || cols == 0 ? 0 : (cols - 1) * ld + rows; }

cublasStatus_t gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const float* A,
                    int lda, long long sa, const float* B, int ldb, long long sb, float beta, float* C, int ldc,
                    long long sc, int batch, int keep_bits) {
    if (m < 0 || n < 0 || k < 0 || batch < 0) return bad("negative size");
    if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T))
        return bad("operation not emulated");
    const long long a_rows = ta == CUBLAS_OP_N ? m : k, a_cols = ta == CUBLAS_OP_N ? k : m;
    const long long b_rows = tb == CUBLAS_OP_N ? k : n, b_cols = tb == CUBLAS_OP_N ? n : k;
    if (lda < std::max<long long>(1, a_rows)) return bad("lda " + std::to_string(lda) + " < rows of A " + std::to_string(a_rows));
    if (ldb < std::max<long long>(1, b_rows)) return bad("ldb " + std::to_string(ldb) + " < rows of B " + std::to_string(b_rows));
    if (ldc < std::max(1, m)) return bad("ldc " + std::to_string(ldc) + " < m " + std::to_string(m));
    if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
    for (int i = 0; i < batch; ++i) {
        const float* Ai = A + i * sa;
        const float* Bi = B + i * sb;
        float* Ci = C + i * sc;
        if (k > 0 && (!cuda_emu::is_device_range(Ai, sizeof(float) * span(a_rows, a_cols, lda)) ||
                      !cuda_emu::is_device_range(Bi, sizeof(float) * span(b_rows, b_cols, ldb))))
            return bad("operand A or B of batch " + std::to_string(i) + " is not inside one device allocation");
        if (!cuda_emu::is_device_range(Ci, sizeof(float) * span(m, n, ldc)))
            return bad("C of batch " + std::to_string(i) + " is not inside one device allocation");
        for (int c = 0; c < n; ++c)
            for (int r = 0; r < m; ++r) {
                float acc = 0.f;
                for (int p = 0; p < k; ++p) {
                    float a = ta == CUBLAS_OP_N ? Ai[r + (long long)p * lda] : Ai[p + (long long)r * lda];
                    float b = tb == CUBLAS_OP_N ? Bi[p + (long long)c * ldb] : Bi[c + (long long)p * ldb];
                    if (keep_bits < 23) a = round_mantissa(a, keep_bits), b = round_mantissa(b, keep_bits);
                    acc += a * b;
                }
                float& out = Ci[r + (long long)c * ldc];
                out = beta == 0.f ? alpha * acc : alpha * acc + beta * out;
            }
    }
    return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t* h) {
    *h = new cuda_emu_cublas;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
// The emulated GEMM needs no workspace; the one given must be device memory, as cuBLAS requires.
cublasStatus_t cublasSetWorkspace(cublasHandle_t, void* workspace, size_t bytes) {
    if (bytes > 0 && !cuda_emu::is_device_range(workspace, bytes)) return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) {
    h->math = m;
    return CUBLAS_STATUS_SUCCESS;
}
const char* cublasGetStatusString(cublasStatus_t s) {
    static thread_local std::string text;
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: text = "CUBLAS_STATUS_NOT_INITIALIZED"; break;
        case CUBLAS_STATUS_INVALID_VALUE: text = "CUBLAS_STATUS_INVALID_VALUE"; break;
        case CUBLAS_STATUS_NOT_SUPPORTED: text = "CUBLAS_STATUS_NOT_SUPPORTED"; break;
        default: text = "unknown cuBLAS status";
    }
    if (!g_reason.empty()) text += " (emulator: " + g_reason + ")";
    g_reason.clear();
    return text.c_str();
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                         int k, const float* alpha, const float* A, int lda, long long sa,
                                         const float* B, int ldb, long long sb, const float* beta, float* C, int ldc,
                                         long long sc, int batch) {
    std::lock_guard<std::recursive_mutex> lock(cuda_emu::big_lock());
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    return gemm(ta, tb, m, n, k, *alpha, A, lda, sa, B, ldb, sb, *beta, C, ldc, sc, batch,
                h->math == CUBLAS_TF32_TENSOR_OP_MATH ? 10 : 23);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void* alpha, const void* A, cudaDataType_t at, int lda,
                                          long long sa, const void* B, cudaDataType_t bt, int ldb, long long sb,
                                          const void* beta, void* C, cudaDataType_t ct, int ldc, long long sc,
                                          int batch, cublasComputeType_t compute, cublasGemmAlgo_t) {
    std::lock_guard<std::recursive_mutex> lock(cuda_emu::big_lock());
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (at != CUDA_R_32F || bt != CUDA_R_32F || ct != CUDA_R_32F) {
        g_reason = "only float32 matrices are emulated";
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    const int keep = compute == CUBLAS_COMPUTE_32F_FAST_16BF ? 7 : compute == CUBLAS_COMPUTE_32F_FAST_TF32 ? 10 : 23;
    return gemm(ta, tb, m, n, k, *(const float*)alpha, (const float*)A, lda, sa, (const float*)B, ldb, sb,
                *(const float*)beta, (float*)C, ldc, sc, batch, keep);
}
