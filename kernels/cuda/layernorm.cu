// Channel LayerNorm at each pixel of (B, C, HW), formulas of kernels/cpu/layernorm.cpp. One thread
// per pixel loops over the C channels (stride HW): neighbouring threads read neighbouring pixels,
// so every channel step is one coalesced load. dw / db sum over all pixels: a deterministic split
// reduction over the per-pixel statistics the backward kernel saved.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace ams::cuda {

namespace {

// Two-pass mean / variance of one pixel's C channels (as the CPU reference).
__device__ inline void pixel_stats(const float* xp, int64_t C, int64_t HW, float eps, float& mu, float& rstd) {
    float s = 0.f;
    for (int64_t c = 0; c < C; ++c) s += xp[c * HW];
    mu = s / (float)C;
    float v = 0.f;
    for (int64_t c = 0; c < C; ++c) {
        float d = xp[c * HW] - mu;
        v += d * d;
    }
    rstd = 1.f / sqrtf(v / (float)C + eps);
}

__global__ void layernorm_forward_kernel(const float* x, const float* w, const float* b, float* y, int64_t B,
                                         int64_t C, int64_t HW, bool with_bias, float eps) {
    AMS_GRID_STRIDE(pix, B * HW) {
        int64_t n = pix / HW, p = pix - n * HW;
        const float* xp = x + n * C * HW + p;
        float* yp = y + n * C * HW + p;
        float mu, rstd;
        pixel_stats(xp, C, HW, eps, mu, rstd);
        for (int64_t c = 0; c < C; ++c) {
            float v = xp[c * HW];
            yp[c * HW] = with_bias ? (v - mu) * rstd * w[c] + (b ? b[c] : 0.f) : v * rstd * w[c];
        }
    }
}

// WithBias: xhat = (x-mu)*rstd, dz = dy*w, dx += rstd*(dz - mean(dz) - xhat*mean(dz*xhat)).
// BiasFree: y = x*rstd*w, dx += rstd*dz - rstd^3*(x-mu)*mean(dz*x).
// Saves mu / rstd per pixel for the dw reduction when `mu_out` is given.
__global__ void layernorm_backward_kernel(const float* x, const float* w, const float* dy, float* dx, float* mu_out,
                                          float* rstd_out, int64_t B, int64_t C, int64_t HW, bool with_bias,
                                          float eps) {
    AMS_GRID_STRIDE(pix, B * HW) {
        int64_t n = pix / HW, p = pix - n * HW;
        const float* xp = x + n * C * HW + p;
        const float* gp = dy + n * C * HW + p;
        float mu, rstd;
        pixel_stats(xp, C, HW, eps, mu, rstd);
        if (mu_out) {
            mu_out[pix] = mu;
            rstd_out[pix] = rstd;
        }
        if (!dx) continue;
        float s1 = 0.f, s2 = 0.f;
        for (int64_t c = 0; c < C; ++c) {
            float dz = gp[c * HW] * w[c], v = xp[c * HW];
            if (with_bias) {
                s1 += dz;
                s2 += dz * ((v - mu) * rstd);
            } else {
                s2 += dz * v;
            }
        }
        float* dp = dx + n * C * HW + p;
        const float invC = 1.f / (float)C;
        for (int64_t c = 0; c < C; ++c) {
            float dz = gp[c * HW] * w[c], v = xp[c * HW];
            if (with_bias) {
                float xhat = (v - mu) * rstd;
                dp[c * HW] += rstd * (dz - s1 * invC - xhat * s2 * invC);
            } else {
                dp[c * HW] += rstd * dz - rstd * rstd * rstd * (v - mu) * s2 * invC;
            }
        }
    }
}

// Row r + first: r + first < C is dw[c]'s term, else db[c - C]'s; k = n * HW + p.
struct ParamGradTerm {
    const float* x;
    const float* dy;
    const float* mu;
    const float* rstd;
    int64_t C, HW, first;
    bool with_bias;
    __device__ float operator()(int64_t r, int64_t k) const {
        const int64_t row = r + first;
        const bool is_db = row >= C;
        const int64_t c = is_db ? row - C : row, n = k / HW, p = k - n * HW;
        const int64_t off = (n * C + c) * HW + p;
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
    layernorm_forward_kernel<<<grid_for(B * HW), kThreads, 0, stream()>>>(x, w, b, y, B, C, HW, with_bias, (float)eps);
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
    if (dx || need_stats) {
        layernorm_backward_kernel<<<grid_for(B * HW), kThreads, 0, stream()>>>(x, w, dy, dx, mu, rstd, B, C, HW,
                                                                               with_bias, (float)eps);
        AMS_CUDA_LAUNCH_CHECK("layernorm backward");
    }
    if (dw || db) {
        // Rows [first, last): dw rows only, db rows only, or both.
        const int64_t first = dw ? 0 : C, last = db ? 2 * C : C;
        split_reduce<float>(last - first, B * HW, ParamGradTerm{x, dy, mu, rstd, C, HW, first, with_bias},
                            ParamGradFinish{dw, db, C, first}, "layernorm parameter gradients");
    }
}

}  // namespace ams::cuda
