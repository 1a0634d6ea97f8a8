// Error checks for CUDA runtime, cuBLAS and cuDNN calls: a failure throws ams::Error naming the
// library's error string, the failed expression, file and line (engine/check.h formats it), so a
// GPU fault surfaces as one clean message instead of a later, unrelated one.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "engine/check.h"

#define CUDA_CHECK(expr)                                                                          \
    do {                                                                                          \
        cudaError_t ams_e_ = (expr);                                                              \
        if (ams_e_ != cudaSuccess)                                                                \
            ::ams::detail::throw_error(#expr, __FILE__, __LINE__,                                 \
                                       ::ams::str("CUDA error: ", cudaGetErrorString(ams_e_)));   \
    } while (0)

#define CUBLAS_CHECK(expr)                                                                        \
    do {                                                                                          \
        cublasStatus_t ams_s_ = (expr);                                                           \
        if (ams_s_ != CUBLAS_STATUS_SUCCESS)                                                      \
            ::ams::detail::throw_error(#expr, __FILE__, __LINE__,                                 \
                                       ::ams::str("cuBLAS error: ", cublasGetStatusString(ams_s_))); \
    } while (0)

#define CUDNN_CHECK(expr)                                                                         \
    do {                                                                                          \
        cudnnStatus_t ams_s_ = (expr);                                                            \
        if (ams_s_ != CUDNN_STATUS_SUCCESS)                                                       \
            ::ams::detail::throw_error(#expr, __FILE__, __LINE__,                                 \
                                       ::ams::str("cuDNN error: ", cudnnGetErrorString(ams_s_))); \
    } while (0)
