// Channel LayerNorm at each pixel of (B, C, HW), formulas of kernels/cpu/layernorm.cpp. A block
// takes 32 consecutive pixels and splits their C channels over 8 groups of 32 threads: a warp is one
// channel group across the 32 pixels, so each of its loads is one coalesced row segment, and the
// per-pixel sums add the 8 groups' partials in a fixed order (deterministic). One thread per pixel
// looping over all C channels left training's deep levels (a few thousand pixels of 4x4 planes,
// 384 channels) with a few dozen blocks of long serial loops. dw / db sum over all pixels: a
// deterministic split reduction over the per-pixel statistics the backward kernel saved. Indices
// are int32 when the tensor's offsets fit (with_index_type): one division per pixel, and one per
// term of the dw / db reduction.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace ams::cuda {

namespace {

constexpr int kPix = 32, kGroups = kThreads / kPix;  // pixels per block, channel groups per pixel

// The sum over the kGroups threads of this thread's pixel, in group order; every thread of the
// block must call it (the pixel loop below is uniform over the block).
__device__ inline float pixel_sum(float v, float (*sh)[kPix]) {
    const int lane = threadIdx.x % kPix, g = threadIdx.x / kPix;
    sh[g][lane] = v;
    __syncthreads();
    float s = 0.f;
    for (int i = 0; i < kGroups; ++i) s += sh[i][lane];
    __syncthreads();  // sh is reused by the next call
    return s;
}

// This thread's pixel of the block's tile starting at `base`: its image n and offset p (valid when
// pix < B*HW), and its channel group g (channels g, g + kGroups, ...). I: the index type
// (common.cuh, with_index_type).
template <class I>
struct PixelSlot {
    I pix, n, p;
    int g;
    bool valid;
    __device__ PixelSlot(I base, I npix, I HW) {
        pix = base + threadIdx.x % kPix;
        g = threadIdx.x / kPix;
        valid = pix < npix;
        n = valid ? pix / HW : 0;
        p = valid ? pix - n * HW : 0;
    }
};

// Two-pass mean / variance of the slot's pixel (as the CPU reference), over all groups.
template <class I>
__device__ inline void pixel_stats(const PixelSlot<I>& t, const float* xp, I C, I HW, float eps, float (*sh)[kPix],
                                   float& mu, float& rstd) {
    float s = 0.f;
    if (t.valid)
        for (I c = t.g; c < C; c += kGroups) s += xp[c * HW];
    mu = pixel_sum(s, sh) / (float)C;
    float v = 0.f;
    if (t.valid)
        for (I c = t.g; c < C; c += kGroups) {
            const float d = xp[c * HW] - mu;
            v += d * d;
        }
    rstd = 1.f / sqrtf(pixel_sum(v, sh) / (float)C + eps);
}

#define AMS_PIXEL_TILES(base, npix) \
    for (I base = (I)blockIdx.x * kPix; base < (npix); base += (I)gridDim.x * kPix)

template <class I>
__global__ void layernorm_forward_kernel(const float* x, const float* w, const float* b, float* y, I B, I C, I HW,
                                         bool with_bias, float eps) {
    __shared__ float sh[kGroups][kPix];
    AMS_PIXEL_TILES(base, B * HW) {
        const PixelSlot<I> t(base, B * HW, HW);
        const float* xp = x + t.n * C * HW + t.p;
        float mu, rstd;
        pixel_stats(t, xp, C, HW, eps, sh, mu, rstd);
        if (!t.valid) continue;
        float* yp = y + t.n * C * HW + t.p;
        for (I c = t.g; c < C; c += kGroups) {
            const float v = xp[c * HW];
            yp[c * HW] = with_bias ? (v - mu) * rstd * w[c] + (b ? b[c] : 0.f) : v * rstd * w[c];
        }
    }
}

// WithBias: xhat = (x-mu)*rstd, dz = dy*w, dx += rstd*(dz - mean(dz) - xhat*mean(dz*xhat)).
// BiasFree: y = x*rstd*w, dx += rstd*dz - rstd^3*(x-mu)*mean(dz*x).
// Saves mu / rstd per pixel for the dw reduction when `mu_out` is given.
template <class I>
__global__ void layernorm_backward_kernel(const float* x, const float* w, const float* dy, float* dx, float* mu_out,
                                          float* rstd_out, I B, I C, I HW, bool with_bias, float eps) {
    __shared__ float sh[kGroups][kPix];
    AMS_PIXEL_TILES(base, B * HW) {
        const PixelSlot<I> t(base, B * HW, HW);
        const float* xp = x + t.n * C * HW + t.p;
        const float* gp = dy + t.n * C * HW + t.p;
        float mu, rstd;
        pixel_stats(t, xp, C, HW, eps, sh, mu, rstd);
        if (mu_out && t.valid && t.g == 0) {
            mu_out[t.pix] = mu;
            rstd_out[t.pix] = rstd;
        }
        if (!dx) continue;  // uniform: the same for every thread
        float s1 = 0.f, s2 = 0.f;
        if (t.valid)
            for (I c = t.g; c < C; c += kGroups) {
                const float dz = gp[c * HW] * w[c], v = xp[c * HW];
                if (with_bias) {
                    s1 += dz;
                    s2 += dz * ((v - mu) * rstd);
                } else {
                    s2 += dz * v;
                }
            }
        if (with_bias) s1 = pixel_sum(s1, sh);
        s2 = pixel_sum(s2, sh);
        if (!t.valid) continue;
        float* dp = dx + t.n * C * HW + t.p;
        const float invC = 1.f / (float)C;
        for (I c = t.g; c < C; c += kGroups) {
            const float dz = gp[c * HW] * w[c], v = xp[c * HW];
            if (with_bias) {
                const float xhat = (v - mu) * rstd;
                dp[c * HW] += rstd * (dz - s1 * invC - xhat * s2 * invC);
            } else {
                dp[c * HW] += rstd * dz - rstd * rstd * rstd * (v - mu) * s2 * invC;
            }
        }
    }
}

#undef AMS_PIXEL_TILES

// Row r + first: r + first < C is dw[c]'s term, else db[c - C]'s; k = n * HW + p. One division
// per term: in I (the index type) when the offsets fit.
template <class I>
struct ParamGradTerm {
    const float* x;
    const float* dy;
    const float* mu;
    const float* rstd;
    I C, HW, first;
    bool with_bias;
    __device__ float operator()(int64_t r, int64_t k_) const {
        const I row = (I)r + first, k = (I)k_;
        const bool is_db = row >= C;
        const I c = is_db ? row - C : row, n = k / HW, p = k - n * HW;
        const I off = (n * C + c) * HW + p;
        float g = dy[off];
        if (is_db) return g;
        return with_bias ? g * ((x[off] - mu[k]) * rstd[k]) : g * x[off] * rstd[k];
    }
};

struct ParamGradFinish {
    float* dw;
    float* db;
    int64_t C, first;
    __device__ void operator()(int64_t r, float s) const {
        const int64_t row = r + first;
        if (row < C) {
            if (dw) dw[row] += s;
        } else if (db) {
            db[row - C] += s;
        }
    }
};

}  // namespace

void layernorm_forward(const float* x, const float* w, const float* b, float* y, int64_t B, int64_t C, int64_t HW,
                       bool with_bias, double eps) {
    if (B * HW == 0 || C == 0) return;
    with_index_type(B * C * HW, [&](auto tag) {
        using I = decltype(tag);
        layernorm_forward_kernel<I><<<grid_for(B * HW, kPix), kThreads, 0, stream()>>>(x, w, b, y, (I)B, (I)C, (I)HW,
                                                                                       with_bias, (float)eps);
    });
    AMS_CUDA_LAUNCH_CHECK("layernorm forward");
}

void layernorm_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db, int64_t B,
                        int64_t C, int64_t HW, bool with_bias, double eps) {
    if (!with_bias) db = nullptr;  // BiasFree has no bias (the CPU reference ignores db too)
    if (B * HW == 0 || C == 0 || (!dx && !dw && !db)) return;
    const bool need_stats = dw != nullptr;
    DeviceBuffer stats(need_stats ? (size_t)(2 * B * HW) * sizeof(float) : 0);
    float* mu = need_stats ? stats.as<float>() : nullptr;
    float* rstd = need_stats ? mu + B * HW : nullptr;
    with_index_type(B * C * HW, [&](auto tag) {
        using I = decltype(tag);
        if (dx || need_stats) {
            layernorm_backward_kernel<I><<<grid_for(B * HW, kPix), kThreads, 0, stream()>>>(
                x, w, dy, dx, mu, rstd, (I)B, (I)C, (I)HW, with_bias, (float)eps);
            AMS_CUDA_LAUNCH_CHECK("layernorm backward");
        }
        if (dw || db) {
            // Rows [first, last): dw rows only, db rows only, or both.
            const int64_t first = dw ? 0 : C, last = db ? 2 * C : C;
            split_reduce<float>(last - first, B * HW,
                                ParamGradTerm<I>{x, dy, mu, rstd, (I)C, (I)HW, (I)first, with_bias},
                                ParamGradFinish{dw, db, C, first}, "layernorm parameter gradients");
        }
    });
}

}  // namespace ams::cuda
