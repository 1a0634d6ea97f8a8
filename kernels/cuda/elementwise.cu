// Element-wise ops on the GPU (kernels/cpu/elementwise.cpp): axpby, accumulate (also scaled by a
// device scalar, so a loss gradient never travels to the host), broadcast mask multiply, a
// deterministic dot product (double partials in a fixed order) into a device scalar, and the
// float32 <-> bfloat16 conversions autograd packs activations with.
#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace ams::cuda {

namespace {

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Memory-bound streams: float4 over the first 4*(n/4) elements when every buffer is 16-byte
// aligned, the n % 4 tail (or everything, unaligned) one float per thread.
template <class Op>
__global__ void map_kernel(Op op, int64_t n, bool vec) {
    const int64_t nvec = vec ? n / 4 : 0;
    AMS_GRID_STRIDE(v, nvec) op.vec4(v * 4);
    AMS_GRID_STRIDE(i, n - nvec * 4) op.one(nvec * 4 + i);
}

template <class Op>
void launch_map(const Op& op, int64_t n, bool aligned, const char* what) {
    if (n <= 0) return;
    const bool vec = aligned && n >= 4;
    map_kernel<<<grid_for(vec ? n / 4 : n), kThreads, 0, stream()>>>(op, n, vec);
    check_launch(what, __FILE__, __LINE__);
}

__device__ inline float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ inline void st4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }

struct AxpbyOp {
    const float* a;
    const float* b;
    float* y;
    float alpha, beta;
    __device__ void one(int64_t i) const { y[i] = alpha * a[i] + beta * b[i]; }
    __device__ void vec4(int64_t i) const {
        float4 p = ld4(a + i), q = ld4(b + i);
        st4(y + i, float4{alpha * p.x + beta * q.x, alpha * p.y + beta * q.y, alpha * p.z + beta * q.z,
                          alpha * p.w + beta * q.w});
    }
};

// dst += s * src with s = alpha, or (*g) * alpha when g is given (read on the device).
struct AccumulateOp {
    float* dst;
    const float* src;
    const float* g;
    float alpha;
    __device__ float scale() const { return g ? *g * alpha : alpha; }
    __device__ void one(int64_t i) const { dst[i] += scale() * src[i]; }
    __device__ void vec4(int64_t i) const {
        const float s = scale();
        float4 d = ld4(dst + i), q = ld4(src + i);
        st4(dst + i, float4{d.x + s * q.x, d.y + s * q.y, d.z + s * q.z, d.w + s * q.w});
    }
};

// engine/dtype.cpp's float_to_bf16: NaN stays a quiet NaN, everything else rounds to nearest even.
__device__ inline uint16_t bf16_bits(float f) {
    const uint32_t x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// Four elements per vector step: a float4 in and 8 bytes out (both 16-byte aligned when vec).
struct ToBf16Op {
    const float* x;
    uint16_t* y;
    __device__ void one(int64_t i) const { y[i] = bf16_bits(x[i]); }
    __device__ void vec4(int64_t i) const {
        const float4 v = ld4(x + i);
        *reinterpret_cast<uint2*>(y + i) = uint2{bf16_bits(v.x) | ((uint32_t)bf16_bits(v.y) << 16),
                                                 bf16_bits(v.z) | ((uint32_t)bf16_bits(v.w) << 16)};
    }
};

struct FromBf16Op {
    const uint16_t* x;
    float* y;
    __device__ void one(int64_t i) const { y[i] = __uint_as_float((uint32_t)x[i] << 16); }
    __device__ void vec4(int64_t i) const {
        const uint2 v = *reinterpret_cast<const uint2*>(x + i);
        st4(y + i, float4{__uint_as_float(v.x << 16), __uint_as_float(v.x & 0xffff0000u),
                          __uint_as_float(v.y << 16), __uint_as_float(v.y & 0xffff0000u)});
    }
};

template <class I>  // the index type (common.cuh, with_index_type)
__global__ void mask_mul_kernel(const float* x, const float* m, float* y, I C, I N, I n, bool acc) {
    AMS_GRID_STRIDE_AS(I, i, n) {
        I b = i / (C * N), p = i % N;
        float v = x[i] * m[b * N + p];
        if (acc) y[i] += v;
        else y[i] = v;
    }
}

struct DotTerm {
    const float* a;
    const float* b;
    __device__ double operator()(int64_t, int64_t k) const { return (double)a[k] * (double)b[k]; }
};
struct StoreScalar {
    float* out;
    __device__ void operator()(int64_t, double s) const { *out = (float)s; }
};

}  // namespace

void axpby(const float* a, const float* b, float* y, int64_t n, float alpha, float beta) {
    launch_map(AxpbyOp{a, b, y, alpha, beta}, n, aligned16(a) && aligned16(b) && aligned16(y), "axpby");
}

void to_bf16(const float* x, uint16_t* y, int64_t n) {
    launch_map(ToBf16Op{x, y}, n, aligned16(x) && aligned16(y), "to bf16");
}

void from_bf16(const uint16_t* x, float* y, int64_t n) {
    launch_map(FromBf16Op{x, y}, n, aligned16(x) && aligned16(y), "from bf16");
}

void accumulate(float* dst, const float* src, int64_t n, float alpha) {
    if (!dst) return;
    launch_map(AccumulateOp{dst, src, nullptr, alpha}, n, aligned16(dst) && aligned16(src), "accumulate");
}

void accumulate_scaled(float* dst, const float* src, int64_t n, const float* g_dev, float alpha) {
    if (!dst) return;
    launch_map(AccumulateOp{dst, src, g_dev, alpha}, n, aligned16(dst) && aligned16(src), "accumulate_scaled");
}

void mask_mul(const float* x, const float* m, float* y, int64_t B, int64_t C, int64_t N, bool accumulate) {
    const int64_t n = B * C * N;
    if (n == 0 || !y) return;
    with_index_type(n, [&](auto t) {
        using I = decltype(t);
        mask_mul_kernel<I><<<grid_for(n), kThreads, 0, stream()>>>(x, m, y, (I)C, (I)N, (I)n, accumulate);
    });
    AMS_CUDA_LAUNCH_CHECK("mask_mul");
}

void dot(const float* a, const float* b, int64_t n, float* out_dev) {
    split_reduce<double>(1, n, DotTerm{a, b}, StoreScalar{out_dev}, "dot");
}

}  // namespace ams::cuda
