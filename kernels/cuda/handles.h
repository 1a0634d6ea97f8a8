// The engine's one CUDA stream and the cuBLAS / cuDNN handles bound to it (created lazily, once per
// process, never destroyed: tensors freed at exit must not find them gone). Everything the engine
// launches goes on this stream, so work is ordered without any explicit synchronisation.
#pragma once
#include <cstdint>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

namespace ams::cuda {

cudaStream_t stream();   // kernels/cuda/runtime.cu
cublasHandle_t cublas();  // on stream(); FP32 math unless tf32_enabled()
cudnnHandle_t cudnn();    // on stream()
// The precision policy (engine/precision.h) as the CUDA code needs it. tf32: cuBLAS and cuDNN may
// use TF32 tensor-core math. bf16: matrix products (sgemm_rm: 1x1 convolutions, attention) round
// their float32 operands to bfloat16 on the tensor cores and accumulate in float32 (cuBLAS's
// 32F_FAST_16BF compute type); cuDNN convolutions may use TF32. Storage stays float32.
bool tf32_enabled();
bool bf16_enabled();
bool tensor_math_enabled();  // tf32 or bf16: tensor-op cuDNN algorithms allowed

// Row-major, strided-batched SGEMM on the engine stream:
// C_i (M, N) = alpha * op(A_i) op(B_i) + beta * C_i for i < batch, X_i = X + i * strideX.
// beta = 0 never reads C (it may hold NaN). Deterministic (cuBLAS without atomics). Under
// bf16_enabled() the operands are rounded to bfloat16 inside cuBLAS.
void sgemm_rm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
              int64_t lda, int64_t stride_a, const float* B, int64_t ldb, int64_t stride_b, float beta,
              float* C, int64_t ldc, int64_t stride_c, int64_t batch);

}  // namespace ams::cuda
