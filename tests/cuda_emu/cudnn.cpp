// cuDNN's NCHW float convolutions, written from its documentation:
//   forward:         y  = alpha * conv(x, w) + beta * y
//   backward data:   dx = alpha * conv^T(dy, w) + beta * dx
//   backward filter: dw = alpha * corr(x, dy) + beta * dw
// with zero padding, stride, dilation, groups; beta == 0 never reads the output. Descriptors must
// agree (x, w and y shapes, groups), buffers must lie in device allocations of the described size,
// a workspace must be as large as its query said. The algorithm menu is the same for the three
// directions: index 0, algorithm 1, tensor-op math (operands rounded to TF32), deterministic;
// index 1, algorithm 2, NON-deterministic (the engine must never pick it); index 2, algorithm 0,
// FMA math, deterministic, 4 KiB of workspace; index 3, algorithm 3, FMA math, deterministic, no
// workspace (the lean one the engine runs when a workspace cannot be allocated).
// CUDA_EMU_CUDNN_UNSUPPORTED=N in the environment: running algorithm N answers NOT_SUPPORTED (as
// cuDNN may for an algorithm its heuristics offered), before anything is written.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_emu/state.h"
#include "cudnn.h"

struct cuda_emu_cudnn {};
struct cuda_emu_tensor_desc {
    int n = 0, c = 0, h = 0, w = 0;
    bool set = false;
};
struct cuda_emu_filter_desc {
    int k = 0, c = 0, h = 0, w = 0;
    bool set = false;
};
struct cuda_emu_conv_desc {
    int pad_h = 0, pad_w = 0, u = 1, v = 1, dil_h = 1, dil_w = 1, groups = 1;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
    bool set = false;
};

namespace {

constexpr size_t kWorkspace = 4096;

// Why the last call failed; cudnnGetErrorString appends it (cuDNN sets no CUDA error).
std::string g_reason;

cudnnStatus_t bad(const std::string& what) {
    g_reason = what;
    return CUDNN_STATUS_BAD_PARAM;
}

float tf32(float f) {
    if (!std::isfinite(f)) return f;
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t lsb = (x >> 13) & 1u;
    x = (x + 0xfffu + lsb) & ~0x1fffu;
    std::memcpy(&f, &x, 4);
    return f;
}

// Shapes of one convolution, checked against each other.
struct Geo {
    int N, C, H, W, K, Cg, KH, KW, Ho, Wo, G;
    const cuda_emu_conv_desc* conv;
};

cudnnStatus_t geometry(const cuda_emu_tensor_desc* x, const cuda_emu_filter_desc* w, const cuda_emu_conv_desc* cv,
                       const cuda_emu_tensor_desc* y, Geo* g) {
    if (!x || !w || !cv || !y || !x->set || !w->set || !cv->set || !y->set) return bad("descriptor not set");
    if (cv->mode != CUDNN_CROSS_CORRELATION) return bad("only cross-correlation is emulated");
    if (cv->groups < 1 || x->c != w->c * cv->groups || w->k % cv->groups != 0)
        return bad("x has " + std::to_string(x->c) + " channels; filter (" + std::to_string(w->k) + ", " +
                   std::to_string(w->c) + ") with " + std::to_string(cv->groups) + " groups does not fit");
    const int nh = x->h + 2 * cv->pad_h - cv->dil_h * (w->h - 1) - 1, nw = x->w + 2 * cv->pad_w - cv->dil_w * (w->w - 1) - 1;
    if (nh < 0 || nw < 0) return bad("filter larger than the padded input");
    const int ho = nh / cv->u + 1, wo = nw / cv->v + 1;
    if (y->n != x->n || y->c != w->k || y->h != ho || y->w != wo)
        return bad("output descriptor (" + std::to_string(y->n) + ", " + std::to_string(y->c) + ", " +
                   std::to_string(y->h) + ", " + std::to_string(y->w) + ") is not the convolution's (" +
                   std::to_string(x->n) + ", " + std::to_string(w->k) + ", " + std::to_string(ho) + ", " +
                   std::to_string(wo) + ")");
    *g = Geo{x->n, x->c, x->h, x->w, w->k, w->c, w->h, w->w, ho, wo, cv->groups, cv};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t check_buffers(const Geo& g, const void* x, const void* w, const void* y, int algo, const void* ws,
                            size_t ws_bytes) {
    const size_t f = sizeof(float);
    if (!cuda_emu::is_device_range(x, f * g.N * g.C * g.H * g.W)) return bad("x is not a device buffer of its size");
    if (!cuda_emu::is_device_range(w, f * g.K * g.Cg * g.KH * g.KW)) return bad("w is not a device buffer of its size");
    if (!cuda_emu::is_device_range(y, f * g.N * g.K * g.Ho * g.Wo)) return bad("y is not a device buffer of its size");
    if (algo < 0 || algo > 3) return bad("algorithm " + std::to_string(algo) + " was not offered");
    if (algo == 2) return bad("algorithm 2 is non-deterministic: the engine must not choose it");
    if (algo == 1 && g.conv->math == CUDNN_FMA_MATH) {
        g_reason = "tensor-op algorithm under CUDNN_FMA_MATH";
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    if (algo == 0 && (ws_bytes < kWorkspace || !cuda_emu::is_device_range(ws, kWorkspace)))
        return bad("algorithm 0 needs its " + std::to_string(kWorkspace) + "-byte workspace");
    if (const char* u = std::getenv("CUDA_EMU_CUDNN_UNSUPPORTED"); u && std::to_string(algo) == u) {
        g_reason = "algorithm " + std::to_string(algo) + " refused (CUDA_EMU_CUDNN_UNSUPPORTED)";
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    return CUDNN_STATUS_SUCCESS;
}

enum class Dir { Forward, Data, Filter };

// One pass over every (image, output, tap) term; `dir` says which buffer receives it.
cudnnStatus_t run(Dir dir, const Geo& g, int algo, float alpha, float beta, const float* x, const float* w,
                  const float* y, float* out) {
    const bool round = algo == 1;  // tensor-op math: TF32 operands
    auto rd = [&](float v) { return round ? tf32(v) : v; };
    const size_t n_out = dir == Dir::Forward ? (size_t)g.N * g.K * g.Ho * g.Wo
                         : dir == Dir::Data  ? (size_t)g.N * g.C * g.H * g.W
                                             : (size_t)g.K * g.Cg * g.KH * g.KW;
    std::vector<double> acc(n_out, 0.0);
    const int Kg = g.K / g.G;
    for (int n = 0; n < g.N; ++n)
        for (int k = 0; k < g.K; ++k) {
            const int grp = k / Kg;
            for (int oy = 0; oy < g.Ho; ++oy)
                for (int ox = 0; ox < g.Wo; ++ox) {
                    const size_t yi = (((size_t)n * g.K + k) * g.Ho + oy) * g.Wo + ox;
                    for (int c = 0; c < g.Cg; ++c)
                        for (int ky = 0; ky < g.KH; ++ky) {
                            const int iy = oy * g.conv->u - g.conv->pad_h + ky * g.conv->dil_h;
                            if (iy < 0 || iy >= g.H) continue;
                            for (int kx = 0; kx < g.KW; ++kx) {
                                const int ix = ox * g.conv->v - g.conv->pad_w + kx * g.conv->dil_w;
                                if (ix < 0 || ix >= g.W) continue;
                                const size_t xi = (((size_t)n * g.C + grp * g.Cg + c) * g.H + iy) * g.W + ix;
                                const size_t wi = (((size_t)k * g.Cg + c) * g.KH + ky) * g.KW + kx;
                                if (dir == Dir::Forward) acc[yi] += (double)rd(x[xi]) * rd(w[wi]);
                                else if (dir == Dir::Data) acc[xi] += (double)rd(w[wi]) * rd(y[yi]);
                                else acc[wi] += (double)rd(x[xi]) * rd(y[yi]);
                            }
                        }
                }
        }
    for (size_t i = 0; i < n_out; ++i) out[i] = beta == 0.f ? (float)(alpha * acc[i]) : (float)(alpha * acc[i] + beta * out[i]);
    return CUDNN_STATUS_SUCCESS;
}

template <class Algo>
cudnnStatus_t menu(int requested, int* returned, cudnnAlgoPerf<Algo>* perf) {
    if (requested < 4) return bad("fewer than 4 algorithms requested");
    perf[0] = {(Algo)1, CUDNN_STATUS_SUCCESS, 1.f, 0, CUDNN_DETERMINISTIC, CUDNN_TENSOR_OP_MATH};
    perf[1] = {(Algo)2, CUDNN_STATUS_SUCCESS, 2.f, 0, CUDNN_NON_DETERMINISTIC, CUDNN_DEFAULT_MATH};
    perf[2] = {(Algo)0, CUDNN_STATUS_SUCCESS, 3.f, kWorkspace, CUDNN_DETERMINISTIC, CUDNN_FMA_MATH};
    perf[3] = {(Algo)3, CUDNN_STATUS_SUCCESS, 4.f, 0, CUDNN_DETERMINISTIC, CUDNN_FMA_MATH};
    *returned = 4;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t workspace(int algo, size_t* bytes) {
    if (algo < 0 || algo > 3) return bad("workspace query for an algorithm not offered");
    *bytes = algo == 0 ? kWorkspace : 0;
    return CUDNN_STATUS_SUCCESS;
}

}  // namespace

#define EMU_LOCK std::lock_guard<std::recursive_mutex> emu_lock_(cuda_emu::big_lock())

const char* cudnnGetErrorString(cudnnStatus_t s) {
    static thread_local std::string text;
    switch (s) {
        case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
        case CUDNN_STATUS_NOT_INITIALIZED: text = "CUDNN_STATUS_NOT_INITIALIZED"; break;
        case CUDNN_STATUS_BAD_PARAM: text = "CUDNN_STATUS_BAD_PARAM"; break;
        case CUDNN_STATUS_NOT_SUPPORTED: text = "CUDNN_STATUS_NOT_SUPPORTED"; break;
        default: text = "unknown cuDNN status";
    }
    if (!g_reason.empty()) text += " (emulator: " + g_reason + ")";
    g_reason.clear();
    return text.c_str();
}
cudnnStatus_t cudnnCreate(cudnnHandle_t* h) {
    *h = new cuda_emu_cudnn;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t, cudaStream_t) { return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) {
    *d = new cuda_emu_tensor_desc;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) {
    *d = new cuda_emu_filter_desc;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) {
    *d = new cuda_emu_conv_desc;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f, cudnnDataType_t t, int n,
                                         int c, int h, int w) {
    if (f != CUDNN_TENSOR_NCHW || t != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
    if (n < 1 || c < 1 || h < 1 || w < 1) return bad("tensor dimensions must be positive");
    if ((long long)n * c * h * w > 0x7fffffffLL) return bad("tensor of more than 2^31 - 1 elements");
    *d = {n, c, h, w, true};
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t, cudnnTensorFormat_t f, int k,
                                         int c, int h, int w) {
    if (f != CUDNN_TENSOR_NCHW || t != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
    if (k < 1 || c < 1 || h < 1 || w < 1) return bad("filter dimensions must be positive");
    *d = {k, c, h, w, true};
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int u, int v,
                                              int dil_h, int dil_w, cudnnConvolutionMode_t mode, cudnnDataType_t t) {
    if (t != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
    if (pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dil_h < 1 || dil_w < 1) return bad("convolution parameters");
    d->pad_h = pad_h, d->pad_w = pad_w, d->u = u, d->v = v, d->dil_h = dil_h, d->dil_w = dil_w, d->mode = mode;
    d->set = true;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int groups) {
    if (groups < 1) return bad("group count");
    d->groups = groups;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) {
    d->math = m;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t, cudnnTensorDescriptor_t x,
                                                     cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t conv,
                                                     cudnnTensorDescriptor_t y, int requested, int* returned,
                                                     cudnnConvolutionFwdAlgoPerf_t* perf) {
    EMU_LOCK;
    Geo g;
    if (cudnnStatus_t s = geometry(x, w, conv, y, &g)) return s;
    return menu(requested, returned, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t, cudnnFilterDescriptor_t w,
                                                          cudnnTensorDescriptor_t dy,
                                                          cudnnConvolutionDescriptor_t conv,
                                                          cudnnTensorDescriptor_t dx, int requested, int* returned,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* perf) {
    EMU_LOCK;
    Geo g;
    if (cudnnStatus_t s = geometry(dx, w, conv, dy, &g)) return s;
    return menu(requested, returned, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t, cudnnTensorDescriptor_t x,
                                                            cudnnTensorDescriptor_t dy,
                                                            cudnnConvolutionDescriptor_t conv,
                                                            cudnnFilterDescriptor_t dw, int requested, int* returned,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
    EMU_LOCK;
    Geo g;
    if (cudnnStatus_t s = geometry(x, dw, conv, dy, &g)) return s;
    return menu(requested, returned, perf);
}
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t x,
                                                      cudnnFilterDescriptor_t w, cudnnConvolutionDescriptor_t conv,
                                                      cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t a,
                                                      size_t* bytes) {
    EMU_LOCK;
    Geo g;
    if (cudnnStatus_t s = geometry(x, w, conv, y, &g)) return s;
    return workspace(a, bytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t, cudnnFilterDescriptor_t w,
                                                           cudnnTensorDescriptor_t dy,
                                                           cudnnConvolutionDescriptor_t conv,
                                                           cudnnTensorDescriptor_t dx, cudnnConvolutionBwdDataAlgo_t a,
                                                           size_t* bytes) {
    EMU_LOCK;
    Geo g;
    if (cudnnStatus_t s = geometry(dx, w, conv, dy, &g)) return s;
    return workspace(a, bytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t, cudnnTensorDescriptor_t x,
                                                             cudnnTensorDescriptor_t dy,
                                                             cudnnConvolutionDescriptor_t conv,
                                                             cudnnFilterDescriptor_t dw,
                                                             cudnnConvolutionBwdFilterAlgo_t a, size_t* bytes) {
    EMU_LOCK;
    Geo g;
    if (cudnnStatus_t s = geometry(x, dw, conv, dy, &g)) return s;
    return workspace(a, bytes);
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t, const void* alpha, cudnnTensorDescriptor_t xd, const void* x,
                                      cudnnFilterDescriptor_t wd, const void* w, cudnnConvolutionDescriptor_t conv,
                                      cudnnConvolutionFwdAlgo_t a, void* ws, size_t ws_bytes, const void* beta,
                                      cudnnTensorDescriptor_t yd, void* y) {
    EMU_LOCK;
    Geo g;
    if (cudnnStatus_t s = geometry(xd, wd, conv, yd, &g)) return s;
    if (cudnnStatus_t s = check_buffers(g, x, w, y, a, ws, ws_bytes)) return s;
    return run(Dir::Forward, g, a, *(const float*)alpha, *(const float*)beta, (const float*)x, (const float*)w, nullptr,
               (float*)y);
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t, const void* alpha, cudnnFilterDescriptor_t wd,
                                           const void* w, cudnnTensorDescriptor_t dyd, const void* dy,
                                           cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdDataAlgo_t a,
                                           void* ws, size_t ws_bytes, const void* beta, cudnnTensorDescriptor_t dxd,
                                           void* dx) {
    EMU_LOCK;
    Geo g;
    if (cudnnStatus_t s = geometry(dxd, wd, conv, dyd, &g)) return s;
    if (cudnnStatus_t s = check_buffers(g, dx, w, dy, a, ws, ws_bytes)) return s;
    return run(Dir::Data, g, a, *(const float*)alpha, *(const float*)beta, nullptr, (const float*)w, (const float*)dy,
               (float*)dx);
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t, const void* alpha, cudnnTensorDescriptor_t xd,
                                             const void* x, cudnnTensorDescriptor_t dyd, const void* dy,
                                             cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdFilterAlgo_t a,
                                             void* ws, size_t ws_bytes, const void* beta,
                                             cudnnFilterDescriptor_t dwd, void* dw) {
    EMU_LOCK;
    Geo g;
    if (cudnnStatus_t s = geometry(xd, dwd, conv, dyd, &g)) return s;
    if (cudnnStatus_t s = check_buffers(g, x, dw, dy, a, ws, ws_bytes)) return s;
    return run(Dir::Filter, g, a, *(const float*)alpha, *(const float*)beta, (const float*)x, nullptr,
               (const float*)dy, (float*)dw);
}
