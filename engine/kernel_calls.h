// The Restormer kernels called on tensors, on their device (CPU twin or CUDA launcher), without
// autograd, for the op facade (engine/ops_restormer.cpp, ops_conv.cpp) and the ops that recompute
// an intermediate in backward (engine/ops_recompute.cpp). Tensors are contiguous, of one device
// and dtype, already checked. Forward outputs are new tensors; backward outputs ACCUMULATE into the
// tensors given, and an undefined one is not computed.
#pragma once
#include <utility>

#include "engine/tensor.h"
#include "kernels/cpu/cpu.h"

namespace ams::detail {

constexpr double kLayerNormEps = 1e-5;

// autograd's gradient buffer of t when t needs a gradient, else an undefined tensor.
Tensor grad_or_none(const Tensor& t);

// Channel LayerNorm of x (B, C, H, W); b is ignored unless with_bias.
Tensor layer_norm_fwd(const Tensor& x, const Tensor& w, const Tensor& b, bool with_bias);
void layer_norm_bwd(const Tensor& x, const Tensor& w, const Tensor& dy, bool with_bias, const Tensor& dx,
                    const Tensor& dw, const Tensor& db);

// Checks conv2d's operands (x (B, Cin, H, W), w (Cout, Cin/groups, KH, KW), b (Cout) or undefined)
// and returns the shape; `op` names the op in the message.
cpu::ConvShape conv_shape(const char* op, const Tensor& x, const Tensor& w, const Tensor& b, int padding, int groups);
Tensor conv_fwd(const cpu::ConvShape& s, const Tensor& x, const Tensor& w, const Tensor& b);
void conv_bwd(const cpu::ConvShape& s, const Tensor& x, const Tensor& w, const Tensor& dy, const Tensor& dx,
              const Tensor& dw, const Tensor& db);

// MDTA core of qkv (B, 3C, H, W): {out (B, C, H, W), attn (B, heads, C/heads, C/heads)}.
std::pair<Tensor, Tensor> attention_fwd(const Tensor& qkv, const Tensor& temperature, int heads);
void attention_bwd(const Tensor& qkv, const Tensor& temperature, const Tensor& attn, const Tensor& dout, int heads,
                   const Tensor& dqkv, const Tensor& dtemperature);

// GDFN's depthwise 3x3 and GELU gate: x (B, 2C, H, W) -> (B, C, H, W).
Tensor dwconv_gate_fwd(const Tensor& x, const Tensor& w, const Tensor& b);
void dwconv_gate_bwd(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& dy, const Tensor& dx,
                     const Tensor& dw, const Tensor& db);

}  // namespace ams::detail
