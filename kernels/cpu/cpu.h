// CPU reference kernels: plain loops over contiguous NCHW buffers (BLAS for matrix products),
// templated on the scalar type so gradient checks can run in double. They are the specification
// the CUDA kernels are tested against. Conventions:
//   - every input pointer is read-only; forward outputs are overwritten;
//   - every backward output (dx, dw, ...) is ACCUMULATED (+=) and may be nullptr when not needed.
// Shapes are in the comment on each buffer.
#pragma once
#include <cstdint>

#include "engine/rng.h"  // MaskRule

namespace ams::cpu {

// ---- matrix product: C (M, N) = alpha * op(A) op(B) + beta * C, row-major. Splits the work over
// the OpenMP threads (BLAS itself runs single-threaded); serial when called inside a parallel region.
// A float product first rounds its operands as the GPU would under the precision policy
// (engine/precision.h): `kind` says which GPU library the product stands for, cuBLAS (Product: 1x1
// convolutions, attention) or cuDNN (Conv: dense and grouped convolutions).
enum class GemmKind : uint8_t { Product, Conv };
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc, GemmKind kind = GemmKind::Product);

// ---- conv2d, stride 1: x (B, Cin, H, W), w (Cout, Cin/groups, KH, KW), b (Cout) or null,
// y (B, Cout, Ho, Wo) with Ho = H + 2*pad - KH + 1.
struct ConvShape {
    int64_t B, Cin, H, W, Cout, KH, KW, pad, groups;
    int64_t Ho() const { return H + 2 * pad - KH + 1; }
    int64_t Wo() const { return W + 2 * pad - KW + 1; }
};
template <class T>
void conv2d_forward(const ConvShape& s, const T* x, const T* w, const T* b, T* y);
template <class T>
void conv2d_backward(const ConvShape& s, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db);
// The depthwise case (groups == Cin == Cout), which conv2d_* hand to kernels/cpu/depthwise.cpp.
template <class T>
void depthwise_forward(const ConvShape& s, const T* x, const T* w, const T* b, T* y);
template <class T>
void depthwise_backward(const ConvShape& s, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db);
// Dense convolutions run im2col in tiles of output rows whose column buffer stays under this many
// bytes (default 8 MiB; at least 1); returns the previous value. Tests set 1: one row per tile.
int64_t set_conv_col_tile_bytes(int64_t bytes);

// ---- the Restormer block's two halves for inference, fused in tiles of rows (CPU only;
// kernels/cpu/block_fused.cpp). x (B, C, H, W); biases may be null.
// D = dw3x3(W_in LN(x) + b_in) + b_dw with W_in (P, C), W_dw (P, 3, 3): y (B, P, H, W).
template <class T>
struct NormProjectDw {
    const T *ln_w, *ln_b;
    bool ln_with_bias;
    double ln_eps;
    const T *w_in, *b_in, *w_dw, *b_dw;
    int64_t P;
};
template <class T>
void norm_project_dw_forward(const T* x, T* y, int64_t B, int64_t C, int64_t H, int64_t W, const NormProjectDw<T>& p);
// y (B, C, H, W) = x + W_out (gelu(D[:h]) * D[h:]) + b_out, D from `in` with P = 2h, W_out (C, h).
template <class T>
struct FfnParams {
    NormProjectDw<T> in;
    const T *w_out, *b_out;
};
template <class T>
void ffn_residual_forward(const T* x, T* y, int64_t B, int64_t C, int64_t H, int64_t W, const FfnParams<T>& p);
// Bytes of a thread's tile buffers for both (default 8 MiB, at least 1); returns the previous
// value. Tests set it small to force one-row tiles.
int64_t set_fused_tile_bytes(int64_t bytes);

// ---- pixel (un)shuffle: unshuffle x (B, C, H, W) -> y (B, C*r*r, H/r, W/r),
// y[b, c*r*r + i*r + j, h, w] = x[b, c, h*r + i, w*r + j]; shuffle is its inverse.
template <class T>
void pixel_unshuffle(const T* x, T* y, int64_t B, int64_t C, int64_t H, int64_t W, int r, bool accumulate);
template <class T>
void pixel_shuffle(const T* x, T* y, int64_t B, int64_t C, int64_t H, int64_t W, int r, bool accumulate);

// ---- pixel-downsampling (SPEC layout): down x (B, C, H, W) -> y (B*s*s, C, H/s, W/s) with
// y[b*s*s + i*s + j, c, h, w] = x[b, c, h*s + i, w*s + j]; up is its inverse, called with B the
// number of full images and H, W the sub-image size: x (B*s*s, C, H, W) -> y (B, C, H*s, W*s).
template <class T>
void pd_down(const T* x, T* y, int64_t B, int64_t C, int64_t H, int64_t W, int s, bool accumulate);
template <class T>
void pd_up(const T* x, T* y, int64_t B, int64_t C, int64_t H, int64_t W, int s, bool accumulate);
// Fused mask + PD: the same maps restricted to the sub-image pixels p (flat index into the
// (B*s*s, h, w) sub-images, h = H/s) with rule.hidden(p) == keep_hidden; shared over channels.
// down: y gets 0 at the other pixels (untouched when accumulating), and flags (B*s*s, 1, h, w),
// when given, 1 at the hidden pixels and 0 elsewhere. up (called with the sub-image size, as pd_up)
// leaves the other pixels of y untouched, so the k branches of a partition fill y between them.
template <class T>
void pd_down_masked(const T* x, T* y, T* flags, int64_t B, int64_t C, int64_t H, int64_t W, int s,
                    const rng::MaskRule& rule, bool keep_hidden, bool accumulate);
template <class T>
void pd_up_masked(const T* x, T* y, int64_t B, int64_t C, int64_t h, int64_t w, int s, const rng::MaskRule& rule,
                  bool keep_hidden, bool accumulate);

// ---- channel LayerNorm at each pixel: x (B, C, HW), w (C), b (C) or null.
// BiasFree (with_bias false): y = x / sqrt(var + eps) * w; WithBias: (x - mu) / sqrt(var + eps) * w + b.
template <class T>
void layernorm_forward(const T* x, const T* w, const T* b, T* y, int64_t B, int64_t C, int64_t HW,
                       bool with_bias, double eps);
template <class T>
void layernorm_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, int64_t B,
                        int64_t C, int64_t HW, bool with_bias, double eps);

// ---- MDTA core: qkv (B, 3C, N) with N = H*W, temperature (heads), out (B, C, N),
// attn (B, heads, c, c) with c = C/heads saved for backward.
template <class T>
void attention_forward(const T* qkv, const T* temperature, T* out, T* attn, int64_t B, int64_t C,
                       int64_t N, int heads);
template <class T>
void attention_backward(const T* qkv, const T* temperature, const T* attn, const T* dout, T* dqkv,
                        T* dtemperature, int64_t B, int64_t C, int64_t N, int heads);

// ---- GDFN gate: x (B, 2C, N) -> y (B, C, N) = gelu(x[:, :C]) * x[:, C:] (exact erf GELU).
template <class T>
void gelu_gate_forward(const T* x, T* y, int64_t B, int64_t C, int64_t N);
template <class T>
void gelu_gate_backward(const T* x, const T* dy, T* dx, int64_t B, int64_t C, int64_t N);
// GDFN's depthwise 3x3 (padding 1) and gate as one op (kernels/cpu/dwconv_gate.cpp):
// x (B, 2C, H, W), w (2C, 1, 3, 3), b (2C) or null -> y (B, C, H, W) = gelu_gate(dwconv(x) + b).
// The depthwise output is not kept: backward recomputes it, one image at a time.
template <class T>
void dwconv_gate_forward(const T* x, const T* w, const T* b, T* y, int64_t B, int64_t C, int64_t H, int64_t W);
template <class T>
void dwconv_gate_backward(const T* x, const T* w, const T* b, const T* dy, T* dx, T* dw, T* db, int64_t B, int64_t C,
                          int64_t H, int64_t W);

// ---- reflect pad (PyTorch 'reflect': edge not repeated) and crop, on (BC, H, W) planes.
struct PadShape {
    int64_t BC, H, W, top, bottom, left, right;
    int64_t Ho() const { return H + top + bottom; }
    int64_t Wo() const { return W + left + right; }
};
template <class T>
void reflect_pad_forward(const PadShape& s, const T* x, T* y);
template <class T>
void reflect_pad_backward(const PadShape& s, const T* dy, T* dx);
// crop: x (BC, H, W) -> y (BC, h, w) at (top, left); backward adds dy into dx at that window.
template <class T>
void crop_forward(const T* x, T* y, int64_t BC, int64_t H, int64_t W, int64_t top, int64_t left,
                  int64_t h, int64_t w);
template <class T>
void crop_backward(const T* dy, T* dx, int64_t BC, int64_t H, int64_t W, int64_t top, int64_t left,
                   int64_t h, int64_t w);

// ---- dihedral transform k in [0, 8) of x (BC, H, W): flip W if k & 1, flip H if k & 2, then
// transpose if k & 4 (y is (BC, W, H) then). accumulate: y += instead of y =.
template <class T>
void dihedral(const T* x, T* y, int64_t BC, int64_t H, int64_t W, int k, bool accumulate);

// ---- channel concat: a (B, Ca, N), b (B, Cb, N) -> y (B, Ca+Cb, N); backward splits.
template <class T>
void concat_forward(const T* a, const T* b, T* y, int64_t B, int64_t Ca, int64_t Cb, int64_t N);
template <class T>
void concat_backward(const T* dy, T* da, T* db, int64_t B, int64_t Ca, int64_t Cb, int64_t N);

// ---- element-wise: y = alpha*a + beta*b; y = x * m with m (B, 1, N) broadcast over C.
template <class T>
void axpby(const T* a, const T* b, T* y, int64_t n, T alpha, T beta);
template <class T>
void accumulate(T* dst, const T* src, int64_t n, T alpha);  // dst += alpha * src
template <class T>
void mask_mul(const T* x, const T* m, T* y, int64_t B, int64_t C, int64_t N, bool accumulate);
template <class T>
double dot(const T* a, const T* b, int64_t n);
// float32 <-> bfloat16 bits (round to nearest even: engine/dtype.h's conversions, bit for bit).
void to_bf16(const float* x, uint16_t* y, int64_t n);
void from_bf16(const uint16_t* x, float* y, int64_t n);

// ---- losses (return the loss; backward accumulates g * dL/dx into dx).
// masked L1: mean of |pred - target| over hidden pixels (mask (B, 1, N) = 1) and all C channels.
// The forward also gives the hidden count, which the backward takes instead of counting again.
template <class T>
double masked_l1_forward(const T* pred, const T* target, const T* mask, int64_t B, int64_t C, int64_t N,
                         double* hidden_count);
template <class T>
void masked_l1_backward(const T* pred, const T* target, const T* mask, T* dpred, int64_t B, int64_t C,
                        int64_t N, double hidden_count, double g);
// plain L1 mean over n elements; gradient into da (sign) and db (-sign).
template <class T>
double l1_forward(const T* a, const T* b, int64_t n);
template <class T>
void l1_backward(const T* a, const T* b, T* da, T* db, int64_t n, double g);
// isotropic smoothness (SPEC Eq. 9): mean over (BC, H-1, W-1) of sqrt(dx^2 + dy^2 + eps).
constexpr double kTvEps = 1e-6;
template <class T>
double tv_forward(const T* x, int64_t BC, int64_t H, int64_t W);
template <class T>
void tv_backward(const T* x, T* dx, int64_t BC, int64_t H, int64_t W, double g);

// ---- AdamW on flat buffers (decoupled weight decay, bias correction); step counts from 1.
void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int64_t step);

}  // namespace ams::cpu
