// Training ops that save less: each is two Restormer ops in a row whose middle tensor autograd
// does not keep. The backward recomputes it from the saved input with the same kernel (bit for
// bit the forward's: every kernel here is deterministic), so the results equal the separate ops'
// exactly. What is recomputed is memory-bound and cheap (a LayerNorm, a depthwise 3x3, the GELU
// gate); the matrix products are never run twice.
#include "engine/dispatch.h"
#include "engine/kernel_calls.h"
#include "engine/ops.h"

namespace ams::ops {

using detail::grad_or_none;

namespace {

// A zero-filled gradient buffer for a recomputed tensor t when any of `needed` is defined.
Tensor zeros_if_needed(const Tensor& t, std::initializer_list<Tensor> needed) {
    for (const Tensor& n : needed)
        if (n.defined()) return Tensor::zeros(t.shape(), t.dtype(), t.device());
    return Tensor();
}

Tensor contig(const Tensor& t) { return t.defined() ? t.contiguous() : Tensor(); }

}  // namespace

Tensor norm_conv1x1(const Tensor& x_, const Tensor& ln_w_, const Tensor& ln_b_, bool ln_with_bias, const Tensor& w_,
                    const Tensor& b_) {
    const char* op = "norm_conv1x1";
    const Tensor lnb_ = ln_with_bias ? ln_b_ : Tensor();
    detail::check_layer_norm(op, x_, ln_w_, lnb_);
    AMS_CHECK(w_.ndim() == 4 && w_.dim(2) == 1 && w_.dim(3) == 1, op, ": weight ", shape_str(w_.shape()),
              " is not a 1x1 convolution's");
    const cpu::ConvShape s = detail::conv_shape(op, x_, w_, b_, 0, 1);
    Tensor x = x_.contiguous(), lw = ln_w_.contiguous(), lb = contig(lnb_), w = w_.contiguous(), b = contig(b_);
    Tensor y = detail::conv_fwd(s, detail::layer_norm_fwd(x, lw, lb, ln_with_bias), w, b);
    if (autograd::needs_grad({x, lw, lb, w, b}))
        autograd::record(y, [sx = autograd::Saved(x), lw, lb, ln_with_bias, w, b, s](const Tensor& g) {
            const Tensor x = sx.get();
            const Tensor n = detail::layer_norm_fwd(x, lw, lb, ln_with_bias);
            const Tensor dx = grad_or_none(x), dlw = grad_or_none(lw), dlb = grad_or_none(lb);
            const Tensor dn = zeros_if_needed(n, {dx, dlw, dlb});
            detail::conv_bwd(s, n, w, g, dn, grad_or_none(w), grad_or_none(b));
            if (dn.defined()) detail::layer_norm_bwd(x, lw, dn, ln_with_bias, dx, dlw, dlb);
        });
    return y;
}

Tensor dwconv_attention(const Tensor& qkv_, const Tensor& w_, const Tensor& b_, const Tensor& temperature_, int heads) {
    const char* op = "dwconv_attention";
    detail::check_attention(op, qkv_, temperature_, heads);
    const int64_t C3 = qkv_.dim(1);
    AMS_CHECK(w_.shape() == Shape({C3, 1, 3, 3}), op, ": depthwise weight ", shape_str(w_.shape()), ", expected (",
              C3, ", 1, 3, 3)");
    const cpu::ConvShape s = detail::conv_shape(op, qkv_, w_, b_, 1, (int)C3);
    Tensor qkv = qkv_.contiguous(), w = w_.contiguous(), b = contig(b_), temp = temperature_.contiguous();
    auto [out, attn] = detail::attention_fwd(detail::conv_fwd(s, qkv, w, b), temp, heads);
    if (autograd::needs_grad({qkv, w, b, temp}))
        autograd::record(out, [sqkv = autograd::Saved(qkv), w, b, temp, attn = attn, heads, s](const Tensor& g) {
            const Tensor qkv = sqkv.get();
            const Tensor d = detail::conv_fwd(s, qkv, w, b);
            const Tensor dqkv = grad_or_none(qkv), dw = grad_or_none(w), db = grad_or_none(b);
            const Tensor dd = zeros_if_needed(d, {dqkv, dw, db});
            detail::attention_bwd(d, temp, attn, g, heads, dd, grad_or_none(temp));
            if (dd.defined()) detail::conv_bwd(s, qkv, w, dd, dqkv, dw, db);
        });
    return out;
}

Tensor gate_conv1x1(const Tensor& x_, const Tensor& w_dw_, const Tensor& b_dw_, const Tensor& w_, const Tensor& b_) {
    const char* op = "gate_conv1x1";
    detail::check_dwconv_gate(op, x_, w_dw_, b_dw_);
    const int64_t B = x_.dim(0), C = x_.dim(1) / 2, H = x_.dim(2), W = x_.dim(3);
    AMS_CHECK(w_.ndim() == 4 && w_.dim(1) == C && w_.dim(2) == 1 && w_.dim(3) == 1, op, ": weight ",
              shape_str(w_.shape()), " is not a 1x1 convolution of the gate's ", C, " channels");
    const cpu::ConvShape so{B, C, H, W, w_.dim(0), 1, 1, 0, 1};
    AMS_CHECK(!b_.defined() || b_.shape() == Shape({so.Cout}), op, ": bias ", shape_str(b_.shape()), " for ",
              so.Cout, " output channels");
    detail::check_same(x_, w_, op);
    if (b_.defined()) detail::check_same(x_, b_, op);
    Tensor x = x_.contiguous(), wdw = w_dw_.contiguous(), bdw = contig(b_dw_), w = w_.contiguous(), b = contig(b_);
    Tensor y = detail::conv_fwd(so, detail::dwconv_gate_fwd(x, wdw, bdw), w, b);
    if (autograd::needs_grad({x, wdw, bdw, w, b}))
        autograd::record(y, [sx = autograd::Saved(x), wdw, bdw, w, b, so](const Tensor& g) {
            const Tensor x = sx.get();
            const Tensor h = detail::dwconv_gate_fwd(x, wdw, bdw);
            const Tensor dx = grad_or_none(x), dwdw = grad_or_none(wdw), dbdw = grad_or_none(bdw);
            const Tensor dh = zeros_if_needed(h, {dx, dwdw, dbdw});
            detail::conv_bwd(so, h, w, g, dh, grad_or_none(w), grad_or_none(b));
            if (dh.defined()) detail::dwconv_gate_bwd(x, wdw, bdw, dh, dx, dwdw, dbdw);
        });
    return y;
}

}  // namespace ams::ops
