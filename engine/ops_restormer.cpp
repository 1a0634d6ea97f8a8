// Restormer's own ops through the facade: channel LayerNorm, the MDTA attention core, GDFN gate
// (alone, and fused with the depthwise conv before it).
#include "engine/dispatch.h"
#include "engine/kernel_calls.h"
#include "engine/ops.h"

namespace ams::ops {

using detail::grad_or_none;
using detail::grad_ptr;
using detail::ptr;

using detail::kLayerNormEps;

Tensor layer_norm(const Tensor& x_, const Tensor& w_, const Tensor& b_, bool with_bias) {
    detail::check_layer_norm("layer_norm", x_, w_, with_bias ? b_ : Tensor());
    Tensor x = x_.contiguous(), w = w_.contiguous();
    Tensor b = with_bias && b_.defined() ? b_.contiguous() : Tensor();
    Tensor y = detail::layer_norm_fwd(x, w, b, with_bias);
    if (autograd::needs_grad({x, w, b}))
        autograd::record(y, [sx = autograd::Saved(x), w, b, with_bias](const Tensor& g) {
            const Tensor x = sx.get();
            detail::layer_norm_bwd(x, w, g, with_bias, grad_or_none(x), grad_or_none(w), grad_or_none(b));
        });
    return y;
}

Tensor attention(const Tensor& qkv_, const Tensor& temperature_, int heads) {
    detail::check_attention("attention", qkv_, temperature_, heads);
    Tensor qkv = qkv_.contiguous(), temp = temperature_.contiguous();
    auto [out, attn] = detail::attention_fwd(qkv, temp, heads);
    if (autograd::needs_grad({qkv, temp}))
        autograd::record(out, [sqkv = autograd::Saved(qkv), temp, attn = attn, heads](const Tensor& g) {
            const Tensor qkv = sqkv.get();
            detail::attention_bwd(qkv, temp, attn, g, heads, grad_or_none(qkv), grad_or_none(temp));
        });
    return out;
}

Tensor gelu_gate(const Tensor& x_) {
    AMS_CHECK(x_.ndim() == 4 && x_.dim(1) % 2 == 0, "gelu_gate: expected (B, 2C, H, W), got ",
              shape_str(x_.shape()));
    Tensor x = x_.contiguous();
    int64_t B = x.dim(0), C = x.dim(1) / 2, N = x.dim(2) * x.dim(3);
    Tensor y = Tensor::empty({B, C, x.dim(2), x.dim(3)}, x.dtype(), x.device());
    AMS_DEVICE_SWITCH(x, cpu::gelu_gate_forward<T>(ptr<T>(x), ptr<T>(y), B, C, N),
                      cuda::gelu_gate_forward(ptr<T>(x), ptr<T>(y), B, C, N));
    if (autograd::needs_grad({x}))
        autograd::record(y, [sx = autograd::Saved(x), B, C, N](const Tensor& g) {
            const Tensor x = sx.get();
            AMS_DEVICE_SWITCH(g, cpu::gelu_gate_backward<T>(ptr<T>(x), ptr<T>(g), grad_ptr<T>(x), B, C, N),
                              cuda::gelu_gate_backward(ptr<T>(x), ptr<T>(g), grad_ptr<T>(x), B, C, N));
        });
    return y;
}

Tensor dwconv_gate(const Tensor& x_, const Tensor& w_, const Tensor& b_) {
    detail::check_dwconv_gate("dwconv_gate", x_, w_, b_);
    Tensor x = x_.contiguous(), w = w_.contiguous(), b = b_.defined() ? b_.contiguous() : Tensor();
    Tensor y = detail::dwconv_gate_fwd(x, w, b);
    if (autograd::needs_grad({x, w, b}))
        autograd::record(y, [sx = autograd::Saved(x), w, b](const Tensor& g) {
            const Tensor x = sx.get();
            detail::dwconv_gate_bwd(x, w, b, g, grad_or_none(x), grad_or_none(w), grad_or_none(b));
        });
    return y;
}

namespace {

// The checked, contiguous inputs of the fused inference pipeline D = dw3x3(W_in LN(x) + b_in) + b_dw.
struct NormProjectDwInputs {
    Tensor x, ln_w, ln_b, w_in, b_in, w_dw, b_dw;
    int64_t P;  // projected channels
};

NormProjectDwInputs check_norm_project_dw(const char* op, const Tensor& x, const Tensor& ln_w, const Tensor& ln_b,
                                          bool ln_with_bias, const Tensor& w_in, const Tensor& b_in,
                                          const Tensor& w_dw, const Tensor& b_dw,
                                          std::initializer_list<Tensor> more) {
    AMS_CHECK(x.ndim() == 4, op, ": expected (B, C, H, W), got ", shape_str(x.shape()));
    AMS_CHECK(x.device() == Device::CPU, op, ": CPU only (the CUDA path runs the separate ops)");
    AMS_CHECK(!autograd::needs_grad({x, ln_w, ln_b, w_in, b_in, w_dw, b_dw}) && !autograd::needs_grad(more), op,
              ": inference only, but an input needs a gradient");
    const int64_t C = x.dim(1), P = w_in.defined() && w_in.ndim() == 4 ? w_in.dim(0) : 0;
    AMS_CHECK(P > 0 && w_in.shape() == Shape({P, C, 1, 1}), op, ": projection weight ", shape_str(w_in.shape()),
              " for ", C, " channels");
    AMS_CHECK(w_dw.shape() == Shape({P, 1, 3, 3}), op, ": dwconv weight ", shape_str(w_dw.shape()), ", expected (", P,
              ", 1, 3, 3)");
    detail::check_layer_norm(op, x, ln_w, ln_with_bias ? ln_b : Tensor());
    AMS_CHECK((!b_in.defined() || b_in.numel() == P) && (!b_dw.defined() || b_dw.numel() == P), op, ": bias sizes");
    for (const Tensor* t : {&ln_w, &ln_b, &w_in, &b_in, &w_dw, &b_dw})
        if (t->defined()) detail::check_same(x, *t, op);
    auto c = [](const Tensor& t) { return t.defined() ? t.contiguous() : Tensor(); };
    return {x.contiguous(), c(ln_w), ln_with_bias ? c(ln_b) : Tensor(), c(w_in), c(b_in), c(w_dw), c(b_dw), P};
}

template <class T>
cpu::NormProjectDw<T> norm_project_dw_params(const NormProjectDwInputs& in, bool ln_with_bias) {
    return {ptr<T>(in.ln_w), ptr<T>(in.ln_b), ln_with_bias, kLayerNormEps, ptr<T>(in.w_in), ptr<T>(in.b_in),
            ptr<T>(in.w_dw), ptr<T>(in.b_dw), in.P};
}

}  // namespace

Tensor norm_project_dw_inference(const Tensor& x_, const Tensor& ln_w, const Tensor& ln_b, bool ln_with_bias,
                                 const Tensor& w_in, const Tensor& b_in, const Tensor& w_dw, const Tensor& b_dw) {
    NormProjectDwInputs in =
        check_norm_project_dw("norm_project_dw_inference", x_, ln_w, ln_b, ln_with_bias, w_in, b_in, w_dw, b_dw, {});
    const Tensor& x = in.x;
    Tensor y = Tensor::empty({x.dim(0), in.P, x.dim(2), x.dim(3)}, x.dtype(), x.device());
    detail::cpu_dispatch(x, [&](auto tag) {
        using T = decltype(tag);
        cpu::norm_project_dw_forward<T>(ptr<T>(x), ptr<T>(y), x.dim(0), x.dim(1), x.dim(2), x.dim(3),
                                        norm_project_dw_params<T>(in, ln_with_bias));
    });
    return y;
}

Tensor ffn_residual_inference(const Tensor& x_, const Tensor& ln_w, const Tensor& ln_b, bool ln_with_bias,
                              const Tensor& w_in, const Tensor& b_in, const Tensor& w_dw, const Tensor& b_dw,
                              const Tensor& w_out, const Tensor& b_out) {
    const char* op = "ffn_residual_inference";
    NormProjectDwInputs in = check_norm_project_dw(op, x_, ln_w, ln_b, ln_with_bias, w_in, b_in, w_dw, b_dw, {w_out, b_out});
    const Tensor& x = in.x;
    const int64_t C = x.dim(1);
    AMS_CHECK(in.P % 2 == 0, op, ": project_in has ", in.P, " output channels, not 2 x hidden");
    AMS_CHECK(w_out.shape() == Shape({C, in.P / 2, 1, 1}), op, ": project_out weight ", shape_str(w_out.shape()));
    AMS_CHECK(!b_out.defined() || b_out.numel() == C, op, ": bias sizes");
    for (const Tensor* t : {&w_out, &b_out})
        if (t->defined()) detail::check_same(x, *t, op);
    Tensor wo = w_out.contiguous(), bo = b_out.defined() ? b_out.contiguous() : Tensor();
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
    detail::cpu_dispatch(x, [&](auto tag) {
        using T = decltype(tag);
        cpu::FfnParams<T> p{norm_project_dw_params<T>(in, ln_with_bias), ptr<T>(wo), ptr<T>(bo)};
        cpu::ffn_residual_forward<T>(ptr<T>(x), ptr<T>(y), x.dim(0), C, x.dim(2), x.dim(3), p);
    });
    return y;
}

}  // namespace ams::ops
