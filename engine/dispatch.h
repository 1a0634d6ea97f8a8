// Helpers shared by the ops_*.cpp files: pick the scalar type for the CPU kernels, or the CUDA path.
#pragma once
#include "engine/autograd.h"
#include "engine/check.h"
#include "engine/tensor.h"
#include "kernels/cpu/cpu.h"
#ifdef AMS_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif

namespace ams::detail {

// Calls f(float{}) or f(double{}) for a CPU tensor of that dtype.
template <class F>
void cpu_dispatch(const Tensor& t, F&& f) {
    if (t.dtype() == DType::F32) f(float{});
    else if (t.dtype() == DType::F64) f(double{});
    else AMS_FAIL("CPU op on ", dtype_name(t.dtype()), " tensor: only F32 and F64 are supported");
}

inline void check_same(const Tensor& a, const Tensor& b, const char* op) {
    AMS_CHECK(a.device() == b.device(), op, ": tensors on different devices");
    AMS_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ (", dtype_name(a.dtype()), " vs ",
              dtype_name(b.dtype()), ")");
}

// The dwconv_gate op's inputs: x (B, 2C, H, W), w (2C, 1, 3, 3), b (2C) or undefined, one device
// and dtype (also checked by the ops that contain it).
inline void check_dwconv_gate(const char* op, const Tensor& x, const Tensor& w, const Tensor& b) {
    AMS_CHECK(x.ndim() == 4 && x.dim(1) % 2 == 0, op, ": expected (B, 2C, H, W), got ", shape_str(x.shape()));
    const int64_t C2 = x.dim(1);
    AMS_CHECK(w.shape() == Shape({C2, 1, 3, 3}), op, ": weight ", shape_str(w.shape()), " for ", C2,
              " channels, expected (", C2, ", 1, 3, 3)");
    AMS_CHECK(!b.defined() || b.shape() == Shape({C2}), op, ": bias ", shape_str(b.shape()), " for ", C2, " channels");
    check_same(x, w, op);
    if (b.defined()) check_same(x, b, op);
}

// A channel LayerNorm's inputs: x (B, C, H, W), w (C), b (C) or undefined (ignored without bias),
// one device and dtype (also checked by the ops that contain it).
inline void check_layer_norm(const char* op, const Tensor& x, const Tensor& w, const Tensor& b) {
    AMS_CHECK(x.ndim() == 4, op, ": expected (B, C, H, W), got ", shape_str(x.shape()));
    const int64_t C = x.dim(1);
    AMS_CHECK(w.numel() == C && (!b.defined() || b.numel() == C), op, ": LayerNorm parameters ",
              shape_str(w.shape()), b.defined() ? " and " + shape_str(b.shape()) : std::string(), " for ", C,
              " channels");
    check_same(x, w, op);
    if (b.defined()) check_same(x, b, op);
}

// The MDTA core's inputs: qkv (B, 3C, H, W), temperature with one value per head, C divisible by
// heads, one device and dtype (also checked by the ops that contain it).
inline void check_attention(const char* op, const Tensor& qkv, const Tensor& temperature, int heads) {
    AMS_CHECK(qkv.ndim() == 4 && qkv.dim(1) % 3 == 0, op, ": qkv must be (B, 3C, H, W), got ", shape_str(qkv.shape()));
    const int64_t C = qkv.dim(1) / 3;
    AMS_CHECK(heads > 0 && C % heads == 0, op, ": ", C, " channels not divisible by ", heads, " heads");
    AMS_CHECK(temperature.numel() == heads, op, ": temperature ", shape_str(temperature.shape()), " for ", heads,
              " heads");
    check_same(qkv, temperature, op);
}

inline void check_cuda_f32(const Tensor& t, const char* op) {
#ifndef AMS_HAVE_CUDA
    AMS_FAIL(op, ": CUDA tensor but this build has no CUDA support");
#endif
    AMS_CHECK(t.dtype() == DType::F32, op, ": CUDA ops take F32 tensors");
}

template <class T>
T* ptr(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

// Gradient buffer pointer of t when it needs one, else nullptr.
template <class T>
T* grad_ptr(const Tensor& t) {
    return t.defined() && t.requires_grad() ? autograd::grad_buffer(t).data<T>() : nullptr;
}

}  // namespace ams::detail

// Runs CPU_BODY with scalar type T on the CPU, or CUDA_BODY (T = float) on the GPU.
#ifdef AMS_HAVE_CUDA
#define AMS_CUDA_BODY(...) \
    {                      \
        using T = float;   \
        __VA_ARGS__;       \
    }
#else
#define AMS_CUDA_BODY(...) \
    {}
#endif
#define AMS_DEVICE_SWITCH(t, CPU_BODY, CUDA_BODY)             \
    do {                                                      \
        if ((t).device() == ::ams::Device::CPU) {            \
            ::ams::detail::cpu_dispatch((t), [&](auto tag_) { \
                using T = decltype(tag_);                     \
                CPU_BODY;                                     \
            });                                               \
        } else {                                              \
            ::ams::detail::check_cuda_f32((t), __func__);     \
            AMS_CUDA_BODY(CUDA_BODY)                          \
        }                                                     \
    } while (0)
