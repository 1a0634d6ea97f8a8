// conv2d (stride 1, zero padding) on the GPU, by kind, as kernels/cpu/conv2d.cpp splits it:
//   depthwise (groups == Cin == Cout, any k): custom gather kernels, filter gradient by a
//     deterministic split reduction;
//   pointwise (1x1, pad 0, groups 1): cuBLAS strided-batched SGEMM per image, Y = W X;
//   everything else (dense, grouped): cuDNN, algorithm chosen once per shape and cached.
// Bias add and bias gradient are custom kernels for every kind. Backward accumulates (beta = 1).
#include <algorithm>
#include <climits>
#include <array>
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "engine/device.h"
#include "engine/precision.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda.h"

namespace ams::cuda {

namespace {

bool is_depthwise(const ConvShape& s) { return s.groups == s.Cin && s.groups == s.Cout; }
bool is_pointwise(const ConvShape& s) { return s.KH == 1 && s.KW == 1 && s.pad == 0 && s.groups == 1; }

// ConvShape's helpers are host-only; kernels get the plain numbers, in their index type I
// (common.cuh, with_index_type).
template <class I>
struct GeoT {
    I B, C, H, W, Ho, Wo, KH, KW, pad;
    template <class J>
    GeoT<J> as() const {
        return GeoT<J>{(J)B, (J)C, (J)H, (J)W, (J)Ho, (J)Wo, (J)KH, (J)KW, (J)pad};
    }
};
using Geo = GeoT<int64_t>;
Geo depthwise_geo(const ConvShape& s) { return Geo{s.B, s.Cin, s.H, s.W, s.Ho(), s.Wo(), s.KH, s.KW, s.pad}; }

// ---------------------------------------------------------------- bias

// y (B, C, HW) += b[c]
template <class I>
__global__ void bias_add_kernel(float* y, const float* b, I n, I C, I HW) {
    AMS_GRID_STRIDE_AS(I, i, n) y[i] += b[(i / HW) % C];
}

// Sum of dy (B, C, HW) over the batch and pixels of channel `row`, k = n * HW + p.
struct BiasGradTerm {
    const float* dy;
    int64_t C, HW;
    __device__ float operator()(int64_t c, int64_t k) const {
        int64_t n = k / HW, p = k - n * HW;
        return dy[(n * C + c) * HW + p];
    }
};

struct AccumulateRow {
    float* out;
    __device__ void operator()(int64_t row, float s) const { out[row] += s; }
};

void bias_forward(const ConvShape& s, const float* b, float* y) {
    if (!b) return;
    const int64_t HW = s.Ho() * s.Wo(), n = s.B * s.Cout * HW;
    with_index_type(n, [&](auto t) {
        using I = decltype(t);
        bias_add_kernel<I><<<grid_for(n), kThreads, 0, stream()>>>(y, b, (I)n, (I)s.Cout, (I)HW);
    });
    AMS_CUDA_LAUNCH_CHECK("conv2d bias");
}

void bias_backward(const ConvShape& s, const float* dy, float* db) {
    if (!db) return;
    const int64_t HW = s.Ho() * s.Wo();
    split_reduce<float>(s.Cout, s.B * HW, BiasGradTerm{dy, s.Cout, HW}, AccumulateRow{db}, "conv2d bias gradient");
}

// ---------------------------------------------------------------- depthwise

// One thread per output element; taps in the CPU's order (bias first, then ky, kx).
template <class I>
__global__ void dw_forward_kernel(GeoT<I> g, const float* x, const float* w, const float* b, float* y) {
    const I n_out = g.B * g.C * g.Ho * g.Wo;
    AMS_GRID_STRIDE_AS(I, idx, n_out) {
        I ox = idx % g.Wo, t = idx / g.Wo;
        I oy = t % g.Ho;
        t /= g.Ho;
        I c = t % g.C;
        y[idx] = depthwise_at<I>(x + t * g.H * g.W, w + c * g.KH * g.KW, b ? b[c] : 0.f, g.H, g.W, g.KH, g.KW, g.pad,
                                 oy, ox);  // t = n * C + c
    }
}

// One thread per INPUT element gathering every output it fed: no write conflicts, no atomics.
template <class I>
__global__ void dw_backward_data_kernel(GeoT<I> g, const float* w, const float* dy, float* dx) {
    const I n_in = g.B * g.C * g.H * g.W;
    AMS_GRID_STRIDE_AS(I, idx, n_in) {
        I ix = idx % g.W, t = idx / g.W;
        I iy = t % g.H;
        t /= g.H;
        I c = t % g.C;
        const float* gp = dy + t * g.Ho * g.Wo;
        const float* wp = w + c * g.KH * g.KW;
        float acc = 0.f;
        for (I ky = 0; ky < g.KH; ++ky) {
            I oy = iy - ky + g.pad;
            if (oy < 0 || oy >= g.Ho) continue;
            for (I kx = 0; kx < g.KW; ++kx) {
                I ox = ix - kx + g.pad;
                if (ox >= 0 && ox < g.Wo) acc += wp[ky * g.KW + kx] * gp[oy * g.Wo + ox];
            }
        }
        dx[idx] += acc;
    }
}

// dw[c, ky, kx] = sum over n, oy, ox of dy[n, c, oy, ox] * x[n, c, oy + ky - pad, ox + kx - pad];
// row = c * KH * KW + tap, k = n * Ho * Wo + (oy * Wo + ox): the general path, for filters other
// than 3x3 (below). Rows of one channel are adjacent, so the blocks of its taps run together and
// read the same x / dy lines from L2.
struct DwFilterTerm {
    Geo g;
    const float* x;
    const float* dy;
    __device__ float operator()(int64_t row, int64_t k) const {
        const int64_t K2 = g.KH * g.KW, HoWo = g.Ho * g.Wo;
        int64_t c = row / K2, tap = row - c * K2, ky = tap / g.KW, kx = tap - ky * g.KW;
        int64_t n = k / HoWo, p = k - n * HoWo, oy = p / g.Wo, ox = p - oy * g.Wo;
        int64_t iy = oy + ky - g.pad, ix = ox + kx - g.pad;
        if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) return 0.f;
        int64_t plane = n * g.C + c;
        return dy[plane * HoWo + p] * x[plane * g.H * g.W + iy * g.W + ix];
    }
};

void depthwise_forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y) {
    Geo g = depthwise_geo(s);
    const int64_t n = g.B * g.C * g.Ho * g.Wo;
    with_index_type(std::max(n, g.B * g.C * g.H * g.W), [&](auto t) {
        using I = decltype(t);
        dw_forward_kernel<I><<<grid_for(n), kThreads, 0, stream()>>>(g.as<I>(), x, w, b, y);
    });
    AMS_CUDA_LAUNCH_CHECK("depthwise conv forward");
}

// 3x3 filters (every depthwise convolution of the Restormer): block (j, c) sums its chunk j of
// channel c's output pixels (k = n * Ho * Wo + p) for all nine taps at once, in registers, each
// thread reading dy once and its x neighbourhood (from L1) per pixel; then it reduces the nine sums
// over the block in a fixed order into partial[(c * 9 + tap) * nsplit + j]. (A block per tap would
// read every dy and x line nine times.)
template <class I>
__global__ void dw3x3_filter_grad_kernel(GeoT<I> g, const float* x, const float* dy, int nsplit, float* partial) {
    const I HoWo = g.Ho * g.Wo, len = g.B * HoWo, chunk = (len + nsplit - 1) / nsplit;
    const I c = blockIdx.y, begin = (I)blockIdx.x * chunk, end = begin + chunk < len ? begin + chunk : len;
    float acc[9] = {};
    for (I k = begin + threadIdx.x; k < end; k += blockDim.x) {
        const I n = k / HoWo, p = k - n * HoWo, oy = p / g.Wo, ox = p - oy * g.Wo, plane = n * g.C + c;
        const float gv = dy[plane * HoWo + p];
        const float* xp = x + plane * g.H * g.W;
#pragma unroll
        for (int ky = 0; ky < 3; ++ky) {
            const I iy = oy + ky - g.pad;
            if (iy < 0 || iy >= g.H) continue;
#pragma unroll
            for (int kx = 0; kx < 3; ++kx) {
                const I ix = ox + kx - g.pad;
                if (ix >= 0 && ix < g.W) acc[ky * 3 + kx] += gv * xp[iy * g.W + ix];
            }
        }
    }
#pragma unroll
    for (int t = 0; t < 9; ++t) {
        const float sum = block_sum(acc[t]);
        if (threadIdx.x == 0) partial[(c * 9 + t) * nsplit + blockIdx.x] = sum;
    }
}

void depthwise_filter_grad(const Geo& g, const float* x, const float* dy, float* dw) {
    const int64_t taps = g.KH * g.KW, len = g.B * g.Ho * g.Wo;
    if (g.KH != 3 || g.KW != 3 || g.C > 65535) {  // the general path: a row per (channel, tap)
        split_reduce<float>(g.C * taps, len, DwFilterTerm{g, x, dy}, AccumulateRow{dw}, "depthwise conv backward filter");
        return;
    }
    const int nsplit = split_count(g.C, len);
    DeviceBuffer partial((size_t)(g.C * 9 * nsplit) * sizeof(float));
    with_index_type(std::max(g.B * g.C * g.H * g.W, g.B * g.C * g.Ho * g.Wo), [&](auto t) {
        using I = decltype(t);
        dw3x3_filter_grad_kernel<I><<<dim3((unsigned)nsplit, (unsigned)g.C), kThreads, 0, stream()>>>(
            g.as<I>(), x, dy, nsplit, partial.as<float>());
    });
    AMS_CUDA_LAUNCH_CHECK("depthwise 3x3 backward filter");
    split_finish_kernel<float><<<grid_for(g.C * 9), kThreads, 0, stream()>>>(partial.as<float>(), g.C * 9, nsplit,
                                                                            AccumulateRow{dw});
    AMS_CUDA_LAUNCH_CHECK("depthwise 3x3 backward filter sum");
}

void depthwise_backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                        float* db) {
    Geo g = depthwise_geo(s);
    if (dx) {
        const int64_t n = g.B * g.C * g.H * g.W;
        with_index_type(std::max(n, g.B * g.C * g.Ho * g.Wo), [&](auto t) {
            using I = decltype(t);
            dw_backward_data_kernel<I><<<grid_for(n), kThreads, 0, stream()>>>(g.as<I>(), w, dy, dx);
        });
        AMS_CUDA_LAUNCH_CHECK("depthwise conv backward data");
    }
    if (dw) depthwise_filter_grad(g, x, dy, dw);
    bias_backward(s, dy, db);
}

// ---------------------------------------------------------------- pointwise (cuBLAS)

// Per image (row-major): Y (Cout, HW) = W (Cout, Cin) X (Cin, HW), batched over images.
void pointwise_forward(const ConvShape& s, const float* x, const float* w, float* y) {
    const int64_t HW = s.H * s.W;
    sgemm_rm(false, false, s.Cout, HW, s.Cin, 1.f, w, s.Cin, 0, x, HW, s.Cin * HW, 0.f, y, HW, s.Cout * HW, s.B);
}

// dw[i] += the sum over images n, in order, of part[n * count + i].
__global__ void sum_images_kernel(const float* part, int64_t B, int64_t count, float* dw) {
    AMS_GRID_STRIDE(i, count) {
        float s = 0.f;
        for (int64_t n = 0; n < B; ++n) s += part[n * count + i];
        dw[i] += s;
    }
}

// y (C, B*HW) = x (B, C, HW) with the image index moved inside the channel: one thread per output.
template <class I>
__global__ void channels_first_kernel(const float* x, float* y, I B, I C, I HW) {
    const I BHW = B * HW;
    AMS_GRID_STRIDE_AS(I, i, C * BHW) {
        const I c = i / BHW, r = i - c * BHW, b = r / HW, p = r - b * HW;
        y[i] = x[(b * C + c) * HW + p];
    }
}

void pointwise_backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw) {
    const int64_t HW = s.H * s.W, count = s.Cout * s.Cin;
    if (dx)  // dX (Cin, HW) += W^T dY
        sgemm_rm(true, false, s.Cin, HW, s.Cout, 1.f, w, s.Cin, 0, dy, HW, s.Cout * HW, 1.f, dx, HW, s.Cin * HW, s.B);
    if (!dw) return;
    // dW (Cout, Cin) += sum_n dY_n X_n^T. The images' X_n are not contiguous along the reduction.
    if (s.B == 1)
        return sgemm_rm(false, true, s.Cout, s.Cin, HW, 1.f, dy, HW, 0, x, HW, 0, 1.f, dw, s.Cin, 0, 1);
    // Small planes with many channels (training's deep levels: 200 sub-images of 4x4 pixels, 384 ->
    // 2042 channels): per-image slices of dW would be far larger than dY and X themselves, so copy
    // both channels-first, (C, B*HW), and reduce over all images in one GEMM.
    if (count > HW * (s.Cin + s.Cout) && s.B * HW <= INT_MAX) {
        const int64_t BHW = s.B * HW;
        DeviceBuffer dyt((size_t)(s.Cout * BHW) * sizeof(float)), xt((size_t)(s.Cin * BHW) * sizeof(float));
        auto channels_first = [&](const float* src, float* dst, int64_t C, const char* what) {
            with_index_type(C * BHW, [&](auto t) {
                using I = decltype(t);
                channels_first_kernel<I><<<grid_for(C * BHW), kThreads, 0, stream()>>>(src, dst, (I)s.B, (I)C, (I)HW);
            });
            AMS_CUDA_LAUNCH_CHECK(what);
        };
        channels_first(dy, dyt.as<float>(), s.Cout, "1x1 conv filter gradient: dY channels first");
        channels_first(x, xt.as<float>(), s.Cin, "1x1 conv filter gradient: X channels first");
        return sgemm_rm(false, true, s.Cout, s.Cin, BHW, 1.f, dyt.as<float>(), BHW, 0, xt.as<float>(), BHW, 0, 1.f, dw,
                        s.Cin, 0, 1);
    }
    // Otherwise one batched GEMM into a slice per image, then a sum over the images in a fixed
    // order (deterministic, no atomics).
    DeviceBuffer part((size_t)(s.B * count) * sizeof(float));
    sgemm_rm(false, true, s.Cout, s.Cin, HW, 1.f, dy, HW, s.Cout * HW, x, HW, s.Cin * HW, 0.f, part.as<float>(), s.Cin,
             count, s.B);
    sum_images_kernel<<<grid_for(count), kThreads, 0, stream()>>>(part.as<float>(), s.B, count, dw);
    AMS_CUDA_LAUNCH_CHECK("1x1 conv filter gradient sum");
}

// ---------------------------------------------------------------- dense and grouped (cuDNN)

constexpr size_t kMaxWorkspace = size_t(1) << 30;

// An algorithm of one direction (forward, backward data, backward filter: the enum value), the math
// type it runs under (set on the descriptor before each call) and its workspace.
struct AlgoChoice {
    int algo = 0;
    cudnnMathType_t math{};
    size_t ws = 0;
};

// One direction's choice, made once per shape: the acceptable algorithms in cuDNN's order (empty
// until chosen, never after). The first runs; the one with the least workspace when the first's
// cannot be allocated; one cuDNN refuses to run is dropped for the shape.
struct Direction {
    std::vector<AlgoChoice> ranked;
    bool chosen() const { return !ranked.empty(); }
    const AlgoChoice& lean() const {
        return *std::min_element(ranked.begin(), ranked.end(),
                                 [](const AlgoChoice& a, const AlgoChoice& b) { return a.ws < b.ws; });
    }
};

struct CudnnConv {
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t w = nullptr;
    cudnnConvolutionDescriptor_t conv = nullptr;
    Direction fwd, bwd_data, bwd_filter;
};

std::atomic<int64_t> g_fallbacks{0};

using ConvKey = std::array<int64_t, 10>;  // the shape and the precision policy

std::mutex g_conv_mu;
std::map<ConvKey, std::unique_ptr<CudnnConv>>& conv_cache() {
    static auto* m = new std::map<ConvKey, std::unique_ptr<CudnnConv>>;  // never destroyed
    return *m;
}

// The descriptor's math type: FMA (float32 accuracy) by default; under the tf32 or bf16 policy,
// DEFAULT (TF32 allowed), then whichever type the chosen algorithm reports, as PyTorch does.
cudnnMathType_t default_math() { return tensor_math_enabled() ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH; }

void use_math(const CudnnConv& c, cudnnMathType_t m) {
    if (tensor_math_enabled()) CUDNN_CHECK(cudnnSetConvolutionMathType(c.conv, m));
}

// An algorithm from cuDNN's heuristics is acceptable when it is supported, deterministic, within
// the workspace budget and, unless the policy is tf32 or bf16, runs without tensor-op (TF32) math.
// ALLOW_CONVERSION is never acceptable: it converts float32 operands to FP16 (5-bit exponent:
// large activations overflow, small gradients flush to zero), which is not the TF32 promised.
template <class Perf>
bool acceptable(const Perf& p, size_t budget) {
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > budget) return false;
    if (p.determinism != CUDNN_DETERMINISTIC || p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return false;
    return tensor_math_enabled() || p.mathType != CUDNN_TENSOR_OP_MATH;
}

// At most 1 GiB of workspace (or what set_cudnn_workspace_limit set), and at most an eighth of the
// device's memory (of --max-memory when it is less). Not of the memory free when the shape is first
// seen: the choice, hence the result's bits, must not depend on what else the GPU holds, or a
// resumed run would not continue exactly. Only when the chosen workspace cannot be allocated at a
// call does run_direction fall back to the leanest algorithm (other bits), and it says so.
size_t g_workspace_limit = kMaxWorkspace;
size_t workspace_budget() {
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    const size_t cap = memory_limit() > 0 ? std::min(memory_limit(), total_b) : total_b;
    return std::min(g_workspace_limit, cap / 8);
}

// Descriptors for one shape, created on first use. Caller holds g_conv_mu.
CudnnConv& conv_entry(const ConvShape& s) {
    ConvKey key{s.B, s.Cin, s.H, s.W, s.Cout, s.KH, s.KW, s.pad, s.groups, (int64_t)precision()};
    auto& cache = conv_cache();
    auto it = cache.find(key);
    if (it != cache.end()) return *it->second;
    auto e = std::make_unique<CudnnConv>();
    AMS_CHECK(s.B <= INT32_MAX && s.Cin <= INT32_MAX && s.H <= INT32_MAX && s.W <= INT32_MAX,
              "conv2d: shape too large for cuDNN");
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&e->x));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&e->y));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&e->w));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&e->conv));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(e->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)s.B, (int)s.Cin, (int)s.H,
                                           (int)s.W));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(e->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)s.B, (int)s.Cout,
                                           (int)s.Ho(), (int)s.Wo()));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(e->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)s.Cout,
                                           (int)(s.Cin / s.groups), (int)s.KH, (int)s.KW));
    // Cross-correlation, as PyTorch's conv2d; FMA math keeps float32 accuracy (cuDNN's default
    // math allows TF32 on Ampere and later).
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(e->conv, (int)s.pad, (int)s.pad, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                                CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionGroupCount(e->conv, (int)s.groups));
    CUDNN_CHECK(cudnnSetConvolutionMathType(e->conv, default_math()));
    CudnnConv& ref = *e;
    cache.emplace(key, std::move(e));
    return ref;
}

// The acceptable algorithms of cuDNN's ranked list whose workspace query (under the algorithm's
// math type) succeeds within the budget, in its order; `fallback` under the default math when
// there is none.
template <class Algo, class Perf, class WorkspaceQuery>
void choose(const CudnnConv& c, const Perf* perf, int n, Algo fallback, WorkspaceQuery workspace, Direction& d) {
    const size_t budget = workspace_budget();
    d.ranked.clear();
    for (int i = 0; i < n; ++i) {
        size_t w = 0;
        if (!acceptable(perf[i], budget)) continue;
        use_math(c, perf[i].mathType);
        if (workspace(perf[i].algo, &w) == CUDNN_STATUS_SUCCESS && w <= budget)
            d.ranked.push_back({(int)perf[i].algo, perf[i].mathType, w});
    }
    if (d.ranked.empty()) {
        AlgoChoice f{(int)fallback, default_math(), 0};
        use_math(c, f.math);
        CUDNN_CHECK(workspace(fallback, &f.ws));
        d.ranked.push_back(f);
    }
}

void pick_forward(CudnnConv& c) {
    if (c.fwd.chosen()) return;
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(cudnn(), c.x, c.w, c.conv, c.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                       &n, perf));
    choose(c, perf, n, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,  // fallback: always supported, no workspace
           [&](cudnnConvolutionFwdAlgo_t a, size_t* ws) {
               return cudnnGetConvolutionForwardWorkspaceSize(cudnn(), c.x, c.w, c.conv, c.y, a, ws);
           },
           c.fwd);
}

void pick_backward_data(CudnnConv& c) {
    if (c.bwd_data.chosen()) return;
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int n = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnn(), c.w, c.y, c.conv, c.x,
                                                            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf));
    choose(c, perf, n, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,  // fallback: deterministic
           [&](cudnnConvolutionBwdDataAlgo_t a, size_t* ws) {
               return cudnnGetConvolutionBackwardDataWorkspaceSize(cudnn(), c.w, c.y, c.conv, c.x, a, ws);
           },
           c.bwd_data);
}

void pick_backward_filter(CudnnConv& c) {
    if (c.bwd_filter.chosen()) return;
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int n = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnn(), c.x, c.y, c.conv, c.w,
                                                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, perf));
    choose(c, perf, n, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,  // fallback: deterministic
           [&](cudnnConvolutionBwdFilterAlgo_t a, size_t* ws) {
               return cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnn(), c.x, c.y, c.conv, c.w, a, ws);
           },
           c.bwd_filter);
}

// Device memory for a workspace, released at scope exit (stream-ordered, like DeviceBuffer).
struct Workspace {
    void* p = nullptr;
    ~Workspace() { free(p); }
};

// One line on stderr the first time each kind of fallback happens in the process; every one is
// counted.
std::atomic<bool> g_said_memory{false}, g_said_refused{false};
void note_fallback(std::atomic<bool>& said, const char* what, const std::string& why, const char* instead) {
    if (!said.exchange(true)) std::fprintf(stderr, "amsnet: %s: %s; %s\n", what, why.c_str(), instead);
    ++g_fallbacks;
}

// Runs one direction: call(algo, workspace, bytes) with the first algorithm of the shape's list;
// with the leanest when the first's workspace cannot be allocated (memory is short now, or under
// --max-memory). An algorithm cuDNN answers NOT_SUPPORTED for launched nothing (so even the
// accumulating backward calls may run again): it leaves the list and the next one runs. Any
// other status throws.
template <class Call>
void run_direction(const CudnnConv& c, Direction& d, const char* what, Call call) {
    while (true) {
        const AlgoChoice* a = &d.ranked.front();
        Workspace ws;
        if (a->ws > 0 && !(ws.p = try_alloc(a->ws))) {
            note_fallback(g_said_memory, what,
                          str("the workspace of its algorithm ", a->algo, " (", size_text((double)a->ws),
                              ") could not be allocated"),
                          "running the algorithm with the least workspace (slower)");
            a = &d.lean();
            if (a->ws > 0) ws.p = alloc(a->ws);
        }
        use_math(c, a->math);
        const cudnnStatus_t st = call(a->algo, ws.p, a->ws);
        if (st == CUDNN_STATUS_NOT_SUPPORTED && d.ranked.size() > 1) {
            note_fallback(g_said_refused, what,
                          str("cuDNN did not run its algorithm ", a->algo, " (", cudnnGetErrorString(st), ")"),
                          "trying the next one");
            d.ranked.erase(d.ranked.begin() + (a - d.ranked.data()));
            continue;
        }
        if (st != CUDNN_STATUS_SUCCESS)
            detail::throw_error(what, __FILE__, __LINE__, str("cuDNN error: ", cudnnGetErrorString(st)));
        AMS_CUDA_LAUNCH_CHECK(what);  // with AMS_CUDA_SYNC=1, a fault surfaces here
        return;
    }
}

// The lock covers the calls too: the math type is set on the shape's shared descriptor just before
// each call, so two host threads running the same shape must not interleave.
void cudnn_forward(const ConvShape& s, const float* x, const float* w, float* y) {
    std::lock_guard<std::mutex> lock(g_conv_mu);
    CudnnConv& c = conv_entry(s);
    pick_forward(c);
    const float one = 1.f, zero = 0.f;  // beta 0: y is not read
    run_direction(c, c.fwd, "cuDNN convolution forward", [&](int algo, void* ws, size_t bytes) {
        return cudnnConvolutionForward(cudnn(), &one, c.x, x, c.w, w, c.conv, (cudnnConvolutionFwdAlgo_t)algo, ws,
                                       bytes, &zero, c.y, y);
    });
}

void cudnn_backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw) {
    std::lock_guard<std::mutex> lock(g_conv_mu);
    CudnnConv& c = conv_entry(s);
    if (dx) pick_backward_data(c);
    if (dw) pick_backward_filter(c);
    const float one = 1.f;  // beta 1: gradients accumulate
    if (dx)
        run_direction(c, c.bwd_data, "cuDNN convolution backward data", [&](int algo, void* ws, size_t bytes) {
            return cudnnConvolutionBackwardData(cudnn(), &one, c.w, w, c.y, dy, c.conv,
                                                (cudnnConvolutionBwdDataAlgo_t)algo, ws, bytes, &one, c.x, dx);
        });
    if (dw)
        run_direction(c, c.bwd_filter, "cuDNN convolution backward filter", [&](int algo, void* ws, size_t bytes) {
            return cudnnConvolutionBackwardFilter(cudnn(), &one, c.x, x, c.y, dy, c.conv,
                                                  (cudnnConvolutionBwdFilterAlgo_t)algo, ws, bytes, &one, c.w, dw);
        });
}

// cuDNN's tensor descriptors hold at most 2^31 - 1 elements, which the PD sub-images of a large
// photo exceed together (4 x 96 channels x 1/4 of a 24-megapixel photo): run such batches in
// chunks of images. Filter gradients accumulate over the chunks (beta 1), so the result is the
// same. One image over the limit needs tiling (denoise --tile).
int64_t g_cudnn_max_elements = INT32_MAX;

template <class F>
void for_cudnn_chunks(const ConvShape& s, F run) {
    const int64_t per_image = std::max(s.Cin * s.H * s.W, s.Cout * s.Ho() * s.Wo());
    AMS_CHECK(per_image <= g_cudnn_max_elements, "conv2d: one image of ", s.Cin, "x", s.H, "x", s.W, " -> ", s.Cout,
              "x", s.Ho(), "x", s.Wo(), " has ", per_image, " elements, more than cuDNN takes (", g_cudnn_max_elements,
              "); denoise in tiles (--tile)");
    const int64_t chunk = std::max<int64_t>(1, g_cudnn_max_elements / per_image);
    for (int64_t b0 = 0; b0 < s.B; b0 += chunk) {
        ConvShape c = s;
        c.B = std::min(chunk, s.B - b0);
        run(c, b0 * s.Cin * s.H * s.W, b0 * s.Cout * s.Ho() * s.Wo());
    }
}

}  // namespace

int64_t set_cudnn_max_elements(int64_t n) {
    AMS_CHECK(n > 0 && n <= INT32_MAX, "set_cudnn_max_elements: ", n, " is not in [1, 2^31)");
    return std::exchange(g_cudnn_max_elements, n);
}

int64_t cudnn_fallbacks() { return g_fallbacks.load(); }

size_t set_cudnn_workspace_limit(size_t bytes) {
    std::lock_guard<std::mutex> lock(g_conv_mu);
    return std::exchange(g_workspace_limit, bytes);
}

void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y) {
    if (s.B == 0 || s.Cout == 0) return;
    if (is_depthwise(s)) return depthwise_forward(s, x, w, b, y);  // bias fused
    if (is_pointwise(s)) pointwise_forward(s, x, w, y);
    else for_cudnn_chunks(s, [&](const ConvShape& c, int64_t xo, int64_t yo) { cudnn_forward(c, x + xo, w, y + yo); });
    bias_forward(s, b, y);
}

void conv2d_backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db) {
    if (s.B == 0 || s.Cout == 0) return;
    if (is_depthwise(s)) return depthwise_backward(s, x, w, dy, dx, dw, db);
    if (is_pointwise(s)) pointwise_backward(s, x, w, dy, dx, dw);
    else
        for_cudnn_chunks(s, [&](const ConvShape& c, int64_t xo, int64_t yo) {
            cudnn_backward(c, x + xo, w, dy + yo, dx ? dx + xo : nullptr, dw);
        });
    bias_backward(s, dy, db);
}

}  // namespace ams::cuda
