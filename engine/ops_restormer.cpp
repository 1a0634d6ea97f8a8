// Restormer's own ops through the facade: channel LayerNorm, the MDTA attention core, GDFN gate.
#include "engine/dispatch.h"
#include "engine/ops.h"

namespace ams::ops {

using detail::grad_ptr;
using detail::ptr;

constexpr double kLayerNormEps = 1e-5;

Tensor layer_norm(const Tensor& x_, const Tensor& w_, const Tensor& b_, bool with_bias) {
    AMS_CHECK(x_.ndim() == 4, "layer_norm: expected (B, C, H, W), got ", shape_str(x_.shape()));
    Tensor x = x_.contiguous(), w = w_.contiguous();
    Tensor b = with_bias && b_.defined() ? b_.contiguous() : Tensor();
    int64_t B = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
    AMS_CHECK(w.numel() == C, "layer_norm: weight ", shape_str(w.shape()), " for ", C, " channels");
    AMS_CHECK(!b.defined() || b.numel() == C, "layer_norm: bias ", shape_str(b.shape()), " for ", C,
              " channels");
    detail::check_same(x, w, "layer_norm");
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
    AMS_DEVICE_SWITCH(x,
        cpu::layernorm_forward<T>(ptr<T>(x), ptr<T>(w), ptr<T>(b), ptr<T>(y), B, C, HW, with_bias, kLayerNormEps),
        cuda::layernorm_forward(ptr<T>(x), ptr<T>(w), ptr<T>(b), ptr<T>(y), B, C, HW, with_bias, kLayerNormEps));
    if (autograd::needs_grad({x, w, b}))
        autograd::record(y, [x, w, b, B, C, HW, with_bias](const Tensor& g) {
            AMS_DEVICE_SWITCH(g,
                cpu::layernorm_backward<T>(ptr<T>(x), ptr<T>(w), ptr<T>(g), grad_ptr<T>(x), grad_ptr<T>(w), grad_ptr<T>(b), B, C, HW, with_bias, kLayerNormEps),
                cuda::layernorm_backward(ptr<T>(x), ptr<T>(w), ptr<T>(g), grad_ptr<T>(x), grad_ptr<T>(w), grad_ptr<T>(b), B, C, HW, with_bias, kLayerNormEps));
        });
    return y;
}

Tensor attention(const Tensor& qkv_, const Tensor& temperature_, int heads) {
    AMS_CHECK(qkv_.ndim() == 4 && qkv_.dim(1) % 3 == 0, "attention: qkv must be (B, 3C, H, W), got ",
              shape_str(qkv_.shape()));
    Tensor qkv = qkv_.contiguous(), temp = temperature_.contiguous();
    int64_t B = qkv.dim(0), C = qkv.dim(1) / 3, N = qkv.dim(2) * qkv.dim(3);
    AMS_CHECK(heads > 0 && C % heads == 0, "attention: ", C, " channels not divisible by ", heads, " heads");
    AMS_CHECK(temp.numel() == heads, "attention: temperature ", shape_str(temp.shape()), " for ", heads,
              " heads");
    detail::check_same(qkv, temp, "attention");
    int64_t c = C / heads;
    Tensor out = Tensor::empty({B, C, qkv.dim(2), qkv.dim(3)}, qkv.dtype(), qkv.device());
    Tensor attn = Tensor::empty({B, heads, c, c}, qkv.dtype(), qkv.device());  // saved softmax
    AMS_DEVICE_SWITCH(qkv,
        cpu::attention_forward<T>(ptr<T>(qkv), ptr<T>(temp), ptr<T>(out), ptr<T>(attn), B, C, N, heads),
        cuda::attention_forward(ptr<T>(qkv), ptr<T>(temp), ptr<T>(out), ptr<T>(attn), B, C, N, heads));
    if (autograd::needs_grad({qkv, temp}))
        autograd::record(out, [qkv, temp, attn, B, C, N, heads](const Tensor& g) {
            AMS_DEVICE_SWITCH(g,
                cpu::attention_backward<T>(ptr<T>(qkv), ptr<T>(temp), ptr<T>(attn), ptr<T>(g), grad_ptr<T>(qkv), grad_ptr<T>(temp), B, C, N, heads),
                cuda::attention_backward(ptr<T>(qkv), ptr<T>(temp), ptr<T>(attn), ptr<T>(g), grad_ptr<T>(qkv), grad_ptr<T>(temp), B, C, N, heads));
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
        autograd::record(y, [x, B, C, N](const Tensor& g) {
            AMS_DEVICE_SWITCH(g, cpu::gelu_gate_backward<T>(ptr<T>(x), ptr<T>(g), grad_ptr<T>(x), B, C, N),
                              cuda::gelu_gate_backward(ptr<T>(x), ptr<T>(g), grad_ptr<T>(x), B, C, N));
        });
    return y;
}

Tensor ffn_residual_inference(const Tensor& x_, const Tensor& ln_w, const Tensor& ln_b, bool ln_with_bias,
                              const Tensor& w_in, const Tensor& b_in, const Tensor& w_dw, const Tensor& b_dw,
                              const Tensor& w_out, const Tensor& b_out) {
    const char* op = "ffn_residual_inference";
    AMS_CHECK(x_.ndim() == 4, op, ": expected (B, C, H, W), got ", shape_str(x_.shape()));
    AMS_CHECK(x_.device() == Device::CPU, op, ": CPU only (the CUDA path runs the separate ops)");
    AMS_CHECK(!autograd::needs_grad({x_, ln_w, ln_b, w_in, b_in, w_dw, b_dw, w_out, b_out}), op,
              ": inference only, but an input needs a gradient");
    const int64_t B = x_.dim(0), C = x_.dim(1), H = x_.dim(2), W = x_.dim(3), h2 = w_in.defined() ? w_in.dim(0) : 0;
    AMS_CHECK(h2 > 0 && h2 % 2 == 0 && w_in.shape() == Shape({h2, C, 1, 1}), op, ": project_in weight ",
              shape_str(w_in.shape()), " for ", C, " channels");
    AMS_CHECK(w_dw.shape() == Shape({h2, 1, 3, 3}), op, ": dwconv weight ", shape_str(w_dw.shape()), ", expected (",
              h2, ", 1, 3, 3)");
    AMS_CHECK(w_out.shape() == Shape({C, h2 / 2, 1, 1}), op, ": project_out weight ", shape_str(w_out.shape()));
    AMS_CHECK(ln_w.numel() == C && (!ln_with_bias || !ln_b.defined() || ln_b.numel() == C), op,
              ": LayerNorm parameters for ", C, " channels");
    AMS_CHECK((!b_in.defined() || b_in.numel() == h2) && (!b_dw.defined() || b_dw.numel() == h2) &&
                  (!b_out.defined() || b_out.numel() == C),
              op, ": bias sizes");
    Tensor x = x_.contiguous();
    for (const Tensor* t : {&ln_w, &ln_b, &w_in, &b_in, &w_dw, &b_dw, &w_out, &b_out})
        if (t->defined()) detail::check_same(x, *t, op);
    auto c = [](const Tensor& t) { return t.defined() ? t.contiguous() : Tensor(); };
    Tensor lw = c(ln_w), lb = ln_with_bias ? c(ln_b) : Tensor(), wi = c(w_in), bi = c(b_in), wd = c(w_dw),
           bd = c(b_dw), wo = c(w_out), bo = c(b_out);
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
    detail::cpu_dispatch(x, [&](auto tag) {
        using T = decltype(tag);
        cpu::FfnParams<T> p{ptr<T>(lw), ptr<T>(lb), ln_with_bias, kLayerNormEps, ptr<T>(wi), ptr<T>(bi),
                            ptr<T>(wd), ptr<T>(bd), ptr<T>(wo), ptr<T>(bo), h2 / 2};
        cpu::ffn_residual_forward<T>(ptr<T>(x), ptr<T>(y), B, C, H, W, p);
    });
    return y;
}

}  // namespace ams::ops
