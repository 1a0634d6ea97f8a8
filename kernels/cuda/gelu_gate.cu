// GDFN gate: y = gelu(x1) * x2 with x1, x2 the channel halves of x (B, 2C, N); exact erf GELU as
// kernels/cpu/gelu_gate.cpp. Memory-bound: 16-byte accesses when C*N is a multiple of 4 and the
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

}  // namespace

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
