// The op facade: autograd-aware functions that check shapes, run the device's kernel (kernels/cpu
// or kernels/cuda, same signatures) and record the backward node. Inputs may be any layout (made
// contiguous here); outputs are contiguous, on the inputs' device and dtype (F32; F64 on the CPU).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace ams::ops {

// ---- convolution and resampling
// x (B, Cin, H, W), w (Cout, Cin/groups, KH, KW), b (Cout) or undefined; stride 1.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int padding, int groups = 1);
Tensor pixel_unshuffle(const Tensor& x, int r);  // (B, C, H, W) -> (B, C*r*r, H/r, W/r)
Tensor pixel_shuffle(const Tensor& x, int r);    // (B, C, H, W) -> (B, C/(r*r), H*r, W*r)
Tensor pd_down(const Tensor& x, int s);          // (B, C, H, W) -> (B*s*s, C, H/s, W/s), SPEC layout
Tensor pd_up(const Tensor& x, int s);            // inverse of pd_down

// ---- Restormer blocks
// Channel LayerNorm; with_bias false = BiasFree (b ignored, mean not subtracted).
Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, bool with_bias);
// MDTA core: qkv (B, 3C, H, W), temperature (heads, 1, 1) -> (B, C, H, W).
Tensor attention(const Tensor& qkv, const Tensor& temperature, int heads);
// GDFN gate: (B, 2C, H, W) -> gelu(first half) * second half, (B, C, H, W).
Tensor gelu_gate(const Tensor& x);
// GDFN's depthwise 3x3 (padding 1) and gate in one op: gelu_gate(conv2d(x, w, b, 1, 2C)) for x
// (B, 2C, H, W), w (2C, 1, 3, 3), b (2C) or undefined. Autograd keeps x, not the depthwise output
// (backward recomputes it).
Tensor dwconv_gate(const Tensor& x, const Tensor& w, const Tensor& b);
// Training with less memory (engine/ops_recompute.cpp): two ops in a row whose middle tensor is
// not kept for backward but recomputed there (cheap, memory-bound kernels only); same results as
// the separate ops, bit for bit, on every device.
// conv2d(layer_norm(x, ln_w, ln_b, ln_with_bias), w, b, 0) for a 1x1 weight w (P, C, 1, 1).
Tensor norm_conv1x1(const Tensor& x, const Tensor& ln_w, const Tensor& ln_b, bool ln_with_bias, const Tensor& w,
                    const Tensor& b);
// attention(conv2d(qkv, w, b, 1, 3C), temperature, heads) for a depthwise 3x3 w (3C, 1, 3, 3).
Tensor dwconv_attention(const Tensor& qkv, const Tensor& w, const Tensor& b, const Tensor& temperature, int heads);
// conv2d(dwconv_gate(x, w_dw, b_dw), w, b, 0) for a 1x1 weight w (Cout, C, 1, 1), x (B, 2C, H, W).
Tensor gate_conv1x1(const Tensor& x, const Tensor& w_dw, const Tensor& b_dw, const Tensor& w, const Tensor& b);
// Inference only, CPU only (kernels/cpu/block_fused.cpp), tiled over image rows so the wide
// activations stay in cache; same results as the separate ops to rounding; both refuse inputs
// that need a gradient. Weights as conv2d takes them.
// dwconv3x3(conv1x1(LN(x))): the attention half's qkv, (B, P, H, W) for a (P, C, 1, 1) projection.
Tensor norm_project_dw_inference(const Tensor& x, const Tensor& ln_w, const Tensor& ln_b, bool ln_with_bias,
                                 const Tensor& w_in, const Tensor& b_in, const Tensor& w_dw, const Tensor& b_dw);
// x + GDFN(LN(x)): the block's feed-forward half.
Tensor ffn_residual_inference(const Tensor& x, const Tensor& ln_w, const Tensor& ln_b, bool ln_with_bias,
                              const Tensor& w_in, const Tensor& b_in, const Tensor& w_dw, const Tensor& b_dw,
                              const Tensor& w_out, const Tensor& b_out);

// ---- element-wise and layout
Tensor add(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, double alpha);
Tensor concat(const Tensor& a, const Tensor& b);  // along channels
Tensor reflect_pad(const Tensor& x, int top, int bottom, int left, int right);
Tensor crop(const Tensor& x, int top, int left, int height, int width);
// Reflect-pads bottom and right so H and W become multiples of `multiple` (any image size through
// networks that need multiples; crop back afterwards).
Tensor pad_to_multiple(const Tensor& x, int multiple);
Tensor reshape(const Tensor& x, const Shape& shape);  // autograd-aware view
// The 8 flips/transposes of (B, C, H, W), k in [0, 8): flip W if k & 1, flip H if k & 2, then
// transpose H and W if k & 4. dihedral(dihedral(x, k), dihedral_inverse(k)) == x.
Tensor dihedral(const Tensor& x, int k);
int dihedral_inverse(int k);
// x (B, C, H, W) * mask (B, 1, H, W) broadcast over channels; the mask gets no gradient.
Tensor mask_mul(const Tensor& x, const Tensor& mask);

// ---- scalar results (0-dim tensors on the inputs' device)
Tensor dot(const Tensor& a, const Tensor& b);  // sum(a * b)
// mean |pred - target| over hidden pixels (mask (B, 1, H, W) = 1) and channels; target gets no grad.
Tensor masked_l1(const Tensor& pred, const Tensor& target, const Tensor& mask);
Tensor l1_loss(const Tensor& a, const Tensor& b);  // mean |a - b|
Tensor tv_loss(const Tensor& x);                   // SPEC Eq. 9, mean over (B, C, H-1, W-1)

// ---- randomness (no autograd), from the counter-based generator in engine/rng.h
// A mask may be a window of a larger one: element (b, y, x) of the (B, 1, h, w) mask draws as
// element (b, y0 + y, x0 + x) of a (B, 1, full_h, full_w) mask, so tiles of an image get exactly
// the draws the whole image gets. The default window is the mask itself.
struct MaskWindow {
    int64_t full_h = 0, full_w = 0, y0 = 0, x0 = 0;  // full_h / full_w = 0: the mask's own height / width
};
// (B, 1, H, W) of 0/1: hidden (1) with probability p, per pixel.
Tensor random_mask(const Shape& shape, double p, uint64_t seed, uint64_t stream, Device device,
                   const MaskWindow& win = {});
// (B, 1, H, W) of 0/1: pixels whose uniform branch in [0, k) equals `branch`. The k masks of one
// (seed, stream) partition the pixels.
Tensor branch_mask(const Shape& shape, int k, int branch, uint64_t seed, uint64_t stream, Device device,
                   const MaskWindow& win = {});

// ---- fused mask + PD (engine/ops_mask.cpp): the masks above, drawn inside the pixel-downsampling.
// Which pixels to hide: with probability p each when k == 0 (training), else those of branch
// `branch` of k (inference); drawn as random_mask / branch_mask draw the (B*s*s, 1, h, w) mask of
// the sub-images with window `win`.
struct MaskDraw {
    uint64_t seed = 0, stream = 0;
    double p = 0;
    int k = 0, branch = 0;
    MaskWindow win = {};
};
// The denoiser's input in one pass: pd_down(x, s) with the pixels `m` hides set to 0; *hidden, when
// given, receives those pixels as a (B*s*s, 1, h, w) 0/1 mask in x's dtype. x gets the gradient
// at the visible pixels.
Tensor masked_pd_down(const Tensor& x, int s, const MaskDraw& m, Tensor* hidden = nullptr);
// The inverse for k = outs.size() branches (m.k and m.branch ignored): the (B, C, h*s, w*s) image
// whose every pixel is pd_up(outs[b]) there, b the branch that hides it. Each outs[b] gets the
// gradient at its own pixels.
Tensor pd_stitch(const std::vector<Tensor>& outs, int s, const MaskDraw& m);

}  // namespace ams::ops
