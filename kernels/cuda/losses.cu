// Losses on the GPU, formulas of kernels/cpu/losses.cpp: masked L1, plain L1, isotropic TV.
// Forward sums run in double through deterministic split reductions and leave the loss in a device
// scalar; backward reads the incoming gradient g from the device too (no host round trip).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace ams::cuda {

namespace {

__device__ inline float sign(float v) { return (float)((v > 0.f) - (v < 0.f)); }  // sign(0) = 0

struct MaskTerm {
    const float* mask;
    __device__ double operator()(int64_t, int64_t k) const { return (double)mask[k]; }
};

// mask[b, p] * |pred - target| at element k of (B, C, N)
struct MaskedAbsTerm {
    const float* pred;
    const float* target;
    const float* mask;
    int64_t C, N;
    __device__ double operator()(int64_t, int64_t k) const {
        int64_t b = k / (C * N), p = k % N;
        return (double)mask[b * N + p] * fabs((double)pred[k] - (double)target[k]);
    }
};

struct StoreDouble {
    double* out;
    __device__ void operator()(int64_t, double s) const { *out = s; }
};

// *out = (float)(s / divisor), the mean
struct StoreMean {
    float* out;
    double divisor;
    __device__ void operator()(int64_t, double s) const { *out = (float)(s / divisor); }
};

__global__ void masked_l1_finish_kernel(const double* sums, float* loss, int64_t C) {
    const double hidden = sums[0], s = sums[1];
    *loss = hidden > 0 ? (float)(s / (hidden * (double)C)) : 0.f;
}

template <class I>  // the index type (common.cuh, with_index_type)
__global__ void masked_l1_backward_kernel(const float* pred, const float* target, const float* mask, float* dpred,
                                          I C, I N, I n, const double* hidden_dev, const float* g) {
    const double hidden = *hidden_dev;
    if (hidden <= 0) return;  // no hidden pixel: the loss is the constant 0
    const float scale = (float)((double)*g / (hidden * (double)C));
    AMS_GRID_STRIDE_AS(I, i, n) {
        I b = i / (C * N), p = i % N;
        dpred[i] += scale * mask[b * N + p] * sign(pred[i] - target[i]);
    }
}

struct AbsDiffTerm {
    const float* a;
    const float* b;
    __device__ double operator()(int64_t, int64_t k) const { return fabs((double)a[k] - (double)b[k]); }
};

__global__ void l1_backward_kernel(const float* a, const float* b, float* da, float* db, int64_t n, const float* g) {
    const float scale = (float)((double)*g / (double)n);
    AMS_GRID_STRIDE(i, n) {
        float s = scale * sign(a[i] - b[i]);
        if (da) da[i] += s;
        if (db) db[i] -= s;
    }
}

// sqrt(dy^2 + dx^2 + eps) of cell k of the (BC, H-1, W-1) grid.
struct TvTerm {
    const float* x;
    int64_t H, W, h, w;
    __device__ double operator()(int64_t, int64_t k) const {
        int64_t p = k / (h * w), i = (k / w) % h, j = k % w;
        const float* r = x + (p * H + i) * W + j;
        double dy = (double)r[W] - r[0], dx = (double)r[1] - r[0];
        return sqrt(dy * dy + dx * dx + cpu::kTvEps);
    }
};

// The CPU scatters each cell (i, j) into (i+1, j), (i, j+1) and (i, j); here each element gathers
// its (up to three) cell terms in the order the CPU adds them: cell above, cell left, own cell.
template <class I>  // the index type (common.cuh, with_index_type)
__global__ void tv_backward_kernel(const float* x, float* dx, I BC, I H, I W, const float* g) {
    const I h = H - 1, w = W - 1;
    const double scale = (double)*g / (double)(BC * h * w);
    // Differences of cell (i, j) and its factor inv = scale / sqrt(ddy^2 + ddx^2 + eps).
    auto cell = [&](I p, I i, I j, double& ddy, double& ddx, double& inv) {
        const float* r = x + (p * H + i) * W + j;
        ddy = (double)r[W] - r[0];
        ddx = (double)r[1] - r[0];
        inv = scale / sqrt(ddy * ddy + ddx * ddx + cpu::kTvEps);
    };
    AMS_GRID_STRIDE_AS(I, idx, BC * H * W) {
        I j = idx % W, t = idx / W;
        I i = t % H, p = t / H;
        float d = dx[idx];
        double ddy, ddx, inv;
        if (i >= 1 && j < w) {  // from cell (i-1, j): d[W] += ddy*inv
            cell(p, i - 1, j, ddy, ddx, inv);
            d += (float)(ddy * inv);
        }
        if (i < h && j >= 1) {  // from cell (i, j-1): d[1] += ddx*inv
            cell(p, i, j - 1, ddy, ddx, inv);
            d += (float)(ddx * inv);
        }
        if (i < h && j < w) {  // own cell: d[0] -= (ddy + ddx)*inv
            cell(p, i, j, ddy, ddx, inv);
            d -= (float)((ddy + ddx) * inv);
        }
        dx[idx] = d;
    }
}

}  // namespace

void masked_l1_forward(const float* pred, const float* target, const float* mask, float* loss_dev, int64_t B,
                       int64_t C, int64_t N, double* stats_dev) {
    double* s = stats_dev;  // [0] hidden count (kept for the backward), [1] masked sum
    split_reduce<double>(1, B * N, MaskTerm{mask}, StoreDouble{s}, "masked_l1 hidden count");
    split_reduce<double>(1, B * C * N, MaskedAbsTerm{pred, target, mask, C, N}, StoreDouble{s + 1}, "masked_l1 sum");
    masked_l1_finish_kernel<<<1, 1, 0, stream()>>>(s, loss_dev, C);
    AMS_CUDA_LAUNCH_CHECK("masked_l1 forward");
}

void masked_l1_backward(const float* pred, const float* target, const float* mask, float* dpred, int64_t B,
                        int64_t C, int64_t N, const double* hidden_dev, const float* g_dev) {
    const int64_t n = B * C * N;
    if (!dpred || n == 0) return;
    with_index_type(n, [&](auto t) {
        using I = decltype(t);
        masked_l1_backward_kernel<I><<<grid_for(n), kThreads, 0, stream()>>>(pred, target, mask, dpred, (I)C, (I)N,
                                                                             (I)n, hidden_dev, g_dev);
    });
    AMS_CUDA_LAUNCH_CHECK("masked_l1 backward");
}

void l1_forward(const float* a, const float* b, int64_t n, float* loss_dev) {
    // n = 0 gives NaN, as the CPU's 0/0.
    split_reduce<double>(1, n, AbsDiffTerm{a, b}, StoreMean{loss_dev, (double)n}, "l1 forward");
}

void l1_backward(const float* a, const float* b, float* da, float* db, int64_t n, const float* g_dev) {
    if ((!da && !db) || n == 0) return;
    l1_backward_kernel<<<grid_for(n), kThreads, 0, stream()>>>(a, b, da, db, n, g_dev);
    AMS_CUDA_LAUNCH_CHECK("l1 backward");
}

void tv_forward(const float* x, int64_t BC, int64_t H, int64_t W, float* loss_dev) {
    const int64_t h = H - 1, w = W - 1;
    if (h <= 0 || w <= 0 || BC == 0) {
        memset0(loss_dev, sizeof(float));  // no cell: the loss is 0
        return;
    }
    split_reduce<double>(1, BC * h * w, TvTerm{x, H, W, h, w}, StoreMean{loss_dev, (double)(BC * h * w)},
                         "tv forward");
}

void tv_backward(const float* x, float* dx, int64_t BC, int64_t H, int64_t W, const float* g_dev) {
    if (!dx || H - 1 <= 0 || W - 1 <= 0 || BC == 0) return;
    with_index_type(BC * H * W, [&](auto t) {
        using I = decltype(t);
        tv_backward_kernel<I><<<grid_for(BC * H * W), kThreads, 0, stream()>>>(x, dx, (I)BC, (I)H, (I)W, g_dev);
    });
    AMS_CUDA_LAUNCH_CHECK("tv backward");
}

}  // namespace ams::cuda
