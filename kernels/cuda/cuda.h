// CUDA kernels' launchers: the same names, arguments and conventions as their CPU twins in
// kernels/cpu/cpu.h (forward outputs overwritten, backward outputs ACCUMULATED, nullptr = not
// needed), float32 on the engine stream. Scalars that stay on the device (losses, their incoming
// gradient) are passed as device pointers so a training step never waits for the host.
#pragma once
#include <cstdint>

#include "engine/rng.h"       // Window, MaskRule
#include "kernels/cpu/cpu.h"  // ConvShape, PadShape
#include "kernels/cuda/runtime.h"

namespace ams::cuda {

using cpu::ConvShape;
using cpu::PadShape;

// conv2d: 1x1 through cuBLAS, depthwise through custom kernels, dense through cuDNN.
void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y);
void conv2d_backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db);
// Largest tensor (elements) one cuDNN call gets, 2^31 - 1 by default; larger batches run in chunks
// of images. Tests lower it to exercise the chunking; returns the previous value.
int64_t set_cudnn_max_elements(int64_t n);
// Most workspace (bytes) one cuDNN algorithm may ask for when a shape is first seen: 1 GiB by
// default (and never more than half the free memory). Tiled denoising lowers it to a share of its
// memory budget; returns the previous value.
size_t set_cudnn_workspace_limit(size_t bytes);
// cuDNN calls that ran their shape's leanest algorithm instead of the fastest, because the
// fastest's workspace could not be allocated or cuDNN would not run it (a count since start).
int64_t cudnn_fallbacks();
// Row reductions (norms, parameter gradients, losses) give each row of at most this many items
// (2048 by default) one warp, longer rows split over blocks; tests change it to exercise both
// paths on one shape. Returns the previous value.
int64_t set_warp_row_max(int64_t n);
// Layout and stencil kernels index with 32-bit integers when every offset is at most this (2^30
// by default), else 64-bit; tests lower it to run the 64-bit path. Returns the previous value.
int64_t set_index32_max(int64_t n);

void pixel_unshuffle(const float* x, float* y, int64_t B, int64_t C, int64_t H, int64_t W, int r, bool accumulate);
void pixel_shuffle(const float* x, float* y, int64_t B, int64_t C, int64_t H, int64_t W, int r, bool accumulate);
void pd_down(const float* x, float* y, int64_t B, int64_t C, int64_t H, int64_t W, int s, bool accumulate);
void pd_up(const float* x, float* y, int64_t B, int64_t C, int64_t h, int64_t w, int s, bool accumulate);
void pd_down_masked(const float* x, float* y, float* flags, int64_t B, int64_t C, int64_t H, int64_t W, int s,
                    const rng::MaskRule& rule, bool keep_hidden, bool accumulate);
void pd_up_masked(const float* x, float* y, int64_t B, int64_t C, int64_t h, int64_t w, int s,
                  const rng::MaskRule& rule, bool keep_hidden, bool accumulate);

void layernorm_forward(const float* x, const float* w, const float* b, float* y, int64_t B, int64_t C,
                       int64_t HW, bool with_bias, double eps);
void layernorm_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db,
                        int64_t B, int64_t C, int64_t HW, bool with_bias, double eps);

void attention_forward(const float* qkv, const float* temperature, float* out, float* attn, int64_t B,
                       int64_t C, int64_t N, int heads);
void attention_backward(const float* qkv, const float* temperature, const float* attn, const float* dout,
                        float* dqkv, float* dtemperature, int64_t B, int64_t C, int64_t N, int heads);

void gelu_gate_forward(const float* x, float* y, int64_t B, int64_t C, int64_t N);
void gelu_gate_backward(const float* x, const float* dy, float* dx, int64_t B, int64_t C, int64_t N);
void dwconv_gate_forward(const float* x, const float* w, const float* b, float* y, int64_t B, int64_t C, int64_t H,
                         int64_t W);
void dwconv_gate_backward(const float* x, const float* w, const float* b, const float* dy, float* dx, float* dw,
                          float* db, int64_t B, int64_t C, int64_t H, int64_t W);

void reflect_pad_forward(const PadShape& s, const float* x, float* y);
void reflect_pad_backward(const PadShape& s, const float* dy, float* dx);
void crop_forward(const float* x, float* y, int64_t BC, int64_t H, int64_t W, int64_t top, int64_t left,
                  int64_t h, int64_t w);
void crop_backward(const float* dy, float* dx, int64_t BC, int64_t H, int64_t W, int64_t top,
                   int64_t left, int64_t h, int64_t w);

// dihedral transform k of x (BC, H, W) (see kernels/cpu/cpu.h); accumulate: y +=.
void dihedral(const float* x, float* y, int64_t BC, int64_t H, int64_t W, int k, bool accumulate);
void concat_forward(const float* a, const float* b, float* y, int64_t B, int64_t Ca, int64_t Cb, int64_t N);
void concat_backward(const float* dy, float* da, float* db, int64_t B, int64_t Ca, int64_t Cb, int64_t N);

void axpby(const float* a, const float* b, float* y, int64_t n, float alpha, float beta);
void accumulate(float* dst, const float* src, int64_t n, float alpha);
// dst += (*g_dev) * alpha * src, with the scalar g read on the device.
void accumulate_scaled(float* dst, const float* src, int64_t n, const float* g_dev, float alpha);
void mask_mul(const float* x, const float* m, float* y, int64_t B, int64_t C, int64_t N, bool accumulate);
void dot(const float* a, const float* b, int64_t n, float* out_dev);
// float32 <-> bfloat16 bits, round to nearest even (the CPU's float_to_bf16, bit for bit).
void to_bf16(const float* x, uint16_t* y, int64_t n);
void from_bf16(const uint16_t* x, float* y, int64_t n);

// stats_dev (2 doubles on the device): the hidden count and the masked sum; the backward reads
// the count from there instead of counting again.
void masked_l1_forward(const float* pred, const float* target, const float* mask, float* loss_dev,
                       int64_t B, int64_t C, int64_t N, double* stats_dev);
void masked_l1_backward(const float* pred, const float* target, const float* mask, float* dpred,
                        int64_t B, int64_t C, int64_t N, const double* hidden_dev, const float* g_dev);
void l1_forward(const float* a, const float* b, int64_t n, float* loss_dev);
void l1_backward(const float* a, const float* b, float* da, float* db, int64_t n, const float* g_dev);
void tv_forward(const float* x, int64_t BC, int64_t H, int64_t W, float* loss_dev);
void tv_backward(const float* x, float* dx, int64_t BC, int64_t H, int64_t W, const float* g_dev);

// m[i] = rule.hidden(i) as 1.0 / 0.0 (engine/rng.h MaskRule: the same draws as the CPU).
void mask_flags(float* m, int64_t n, const rng::MaskRule& rule);

void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int64_t step);

}  // namespace ams::cuda
