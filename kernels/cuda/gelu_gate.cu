// GDFN gate: y = gelu(x1) * x2 with x1, x2 the channel halves of x (B, 2C, N); exact erf GELU as
// kernels/cpu/gelu_gate.cpp. Also the gate fused with the depthwise 3x3 before it (dwconv_gate). Memory-bound: 16-byte accesses when C*N is a multiple of 4 and the
// buffers are 16-byte aligned (always, for pool allocations), else one float per thread.
#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace ams::cuda {

namespace {

constexpr float kSqrt1_2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

__device__ inline float gelu_gate(float a, float b) { return 0.5f * a * (1.f + erff(a * kSqrt1_2)) * b; }

// d x1 = dy * x2 * (Phi(a) + a phi(a));  d x2 = dy * gelu(a)
__device__ inline void gelu_gate_grad(float a, float b, float g, float& d1, float& d2) {
    float cdf = 0.5f * (1.f + erff(a * kSqrt1_2));
    float pdf = kInvSqrt2Pi * expf(-0.5f * a * a);
    d1 += g * b * (cdf + a * pdf);
    d2 += g * a * cdf;
}

// idx over y (B, C*N) in units of V floats; x1 at b*2CN + rem, x2 C*N further.
template <int V>
__global__ void gelu_gate_forward_kernel(const float* x, float* y, int64_t CN, int64_t n_vec) {
    AMS_GRID_STRIDE(v, n_vec) {
        int64_t i = v * V, b = i / CN, rem = i - b * CN;
        const float* x1 = x + b * 2 * CN + rem;
        if constexpr (V == 4) {
            float4 a = *reinterpret_cast<const float4*>(x1), c = *reinterpret_cast<const float4*>(x1 + CN);
            float4 r{gelu_gate(a.x, c.x), gelu_gate(a.y, c.y), gelu_gate(a.z, c.z), gelu_gate(a.w, c.w)};
            *reinterpret_cast<float4*>(y + i) = r;
        } else {
            y[i] = gelu_gate(x1[0], x1[CN]);
        }
    }
}

template <int V>
__global__ void gelu_gate_backward_kernel(const float* x, const float* dy, float* dx, int64_t CN, int64_t n_vec) {
    AMS_GRID_STRIDE(v, n_vec) {
        int64_t i = v * V, b = i / CN, rem = i - b * CN;
        const float* x1 = x + b * 2 * CN + rem;
        float* d1 = dx + b * 2 * CN + rem;
        if constexpr (V == 4) {
            float4 a = *reinterpret_cast<const float4*>(x1), c = *reinterpret_cast<const float4*>(x1 + CN);
            float4 g = *reinterpret_cast<const float4*>(dy + i);
            float4 p = *reinterpret_cast<float4*>(d1), q = *reinterpret_cast<float4*>(d1 + CN);
            gelu_gate_grad(a.x, c.x, g.x, p.x, q.x);
            gelu_gate_grad(a.y, c.y, g.y, p.y, q.y);
            gelu_gate_grad(a.z, c.z, g.z, p.z, q.z);
            gelu_gate_grad(a.w, c.w, g.w, p.w, q.w);
            *reinterpret_cast<float4*>(d1) = p;
            *reinterpret_cast<float4*>(d1 + CN) = q;
        } else {
            gelu_gate_grad(x1[0], x1[CN], dy[i], d1[0], d1[CN]);
        }
    }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Depthwise 3x3 (zero padding 1) of plane xp (H, W) at (oy, ox), as the depthwise conv kernel.
template <class I>
__device__ inline float dw3x3(const float* xp, const float* w9, float bias, I H, I W, I oy, I ox) {
    return depthwise_at<I>(xp, w9, bias, H, W, 3, 3, 1, oy, ox);
}

// GDFN's depthwise 3x3 + gate, one thread per output element of y (B, C, H, W): both halves'
// depthwise values computed in registers, never stored. The backward kernel recomputes them and
// writes d(depthwise output) (B, 2C, H, W) for the depthwise conv's own backward. I: the index
// type (common.cuh, with_index_type).
template <class I>
__global__ void dwconv_gate_forward_kernel(const float* x, const float* w, const float* b, float* y, I B, I C, I H,
                                           I W) {
    const I HW = H * W, n = B * C * HW;
    AMS_GRID_STRIDE_AS(I, i, n) {
        const I p = i % HW, c = (i / HW) % C, img = i / (C * HW), oy = p / W, ox = p - oy * W;
        const float* x1 = x + (img * 2 * C + c) * HW;
        const float a = dw3x3<I>(x1, w + c * 9, b ? b[c] : 0.f, H, W, oy, ox);
        const float g = dw3x3<I>(x1 + C * HW, w + (C + c) * 9, b ? b[C + c] : 0.f, H, W, oy, ox);
        y[i] = gelu_gate(a, g);
    }
}

template <class I>
__global__ void dwconv_gate_grad_kernel(const float* x, const float* w, const float* b, const float* dy, float* dd,
                                        I B, I C, I H, I W) {
    const I HW = H * W, n = B * C * HW;
    AMS_GRID_STRIDE_AS(I, i, n) {
        const I p = i % HW, c = (i / HW) % C, img = i / (C * HW), oy = p / W, ox = p - oy * W;
        const I o1 = (img * 2 * C + c) * HW, o2 = o1 + C * HW;
        const float a = dw3x3<I>(x + o1, w + c * 9, b ? b[c] : 0.f, H, W, oy, ox);
        const float g = dw3x3<I>(x + o2, w + (C + c) * 9, b ? b[C + c] : 0.f, H, W, oy, ox);
        float d1 = 0.f, d2 = 0.f;
        gelu_gate_grad(a, g, dy[i], d1, d2);
        dd[o1 + p] = d1;
        dd[o2 + p] = d2;
    }
}

}  // namespace

void dwconv_gate_forward(const float* x, const float* w, const float* b, float* y, int64_t B, int64_t C, int64_t H,
                         int64_t W) {
    const int64_t n = B * C * H * W;
    if (n == 0) return;
    with_index_type(2 * n, [&](auto t) {  // x has 2C channels
        using I = decltype(t);
        dwconv_gate_forward_kernel<I><<<grid_for(n), kThreads, 0, stream()>>>(x, w, b, y, (I)B, (I)C, (I)H, (I)W);
    });
    AMS_CUDA_LAUNCH_CHECK("dwconv_gate forward");
}

void dwconv_gate_backward(const float* x, const float* w, const float* b, const float* dy, float* dx, float* dw,
                          float* db, int64_t B, int64_t C, int64_t H, int64_t W) {
    const int64_t n = B * C * H * W;
    if (n == 0 || (!dx && !dw && !db)) return;
    DeviceBuffer dd((size_t)(2 * n) * sizeof(float));  // every element written by the grad kernel
    with_index_type(2 * n, [&](auto t) {
        using I = decltype(t);
        dwconv_gate_grad_kernel<I><<<grid_for(n), kThreads, 0, stream()>>>(x, w, b, dy, dd.as<float>(), (I)B, (I)C,
                                                                           (I)H, (I)W);
    });
    AMS_CUDA_LAUNCH_CHECK("dwconv_gate backward (gate)");
    conv2d_backward(ConvShape{B, 2 * C, H, W, 2 * C, 3, 3, 1, 2 * C}, x, w, dd.as<float>(), dx, dw, db);
}

void gelu_gate_forward(const float* x, float* y, int64_t B, int64_t C, int64_t N) {
    const int64_t CN = C * N, n = B * CN;
    if (n == 0) return;
    if (CN % 4 == 0 && aligned16(x) && aligned16(y))
        gelu_gate_forward_kernel<4><<<grid_for(n / 4), kThreads, 0, stream()>>>(x, y, CN, n / 4);
    else
        gelu_gate_forward_kernel<1><<<grid_for(n), kThreads, 0, stream()>>>(x, y, CN, n);
    AMS_CUDA_LAUNCH_CHECK("gelu_gate forward");
}

void gelu_gate_backward(const float* x, const float* dy, float* dx, int64_t B, int64_t C, int64_t N) {
    const int64_t CN = C * N, n = B * CN;
    if (n == 0 || !dx) return;
    if (CN % 4 == 0 && aligned16(x) && aligned16(dy) && aligned16(dx))
        gelu_gate_backward_kernel<4><<<grid_for(n / 4), kThreads, 0, stream()>>>(x, dy, dx, CN, n / 4);
    else
        gelu_gate_backward_kernel<1><<<grid_for(n), kThreads, 0, stream()>>>(x, dy, dx, CN, n);
    AMS_CUDA_LAUNCH_CHECK("gelu_gate backward");
}

}  // namespace ams::cuda
