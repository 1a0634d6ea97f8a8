#include "engine/kernel_calls.h"

#include "engine/dispatch.h"

namespace ams::detail {

Tensor grad_or_none(const Tensor& t) {
    return t.defined() && t.requires_grad() ? autograd::grad_buffer(t) : Tensor();
}

Tensor layer_norm_fwd(const Tensor& x, const Tensor& w, const Tensor& b, bool with_bias) {
    const int64_t B = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
    const Tensor bias = with_bias ? b : Tensor();
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
    AMS_DEVICE_SWITCH(x,
        cpu::layernorm_forward<T>(ptr<T>(x), ptr<T>(w), ptr<T>(bias), ptr<T>(y), B, C, HW, with_bias, kLayerNormEps),
        cuda::layernorm_forward(ptr<T>(x), ptr<T>(w), ptr<T>(bias), ptr<T>(y), B, C, HW, with_bias, kLayerNormEps));
    return y;
}

void layer_norm_bwd(const Tensor& x, const Tensor& w, const Tensor& dy, bool with_bias, const Tensor& dx,
                    const Tensor& dw, const Tensor& db) {
    const int64_t B = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
    const Tensor dbias = with_bias ? db : Tensor();
    AMS_DEVICE_SWITCH(x,
        cpu::layernorm_backward<T>(ptr<T>(x), ptr<T>(w), ptr<T>(dy), ptr<T>(dx), ptr<T>(dw), ptr<T>(dbias), B, C, HW, with_bias, kLayerNormEps),
        cuda::layernorm_backward(ptr<T>(x), ptr<T>(w), ptr<T>(dy), ptr<T>(dx), ptr<T>(dw), ptr<T>(dbias), B, C, HW, with_bias, kLayerNormEps));
}

cpu::ConvShape conv_shape(const char* op, const Tensor& x, const Tensor& w, const Tensor& b, int padding, int groups) {
    AMS_CHECK(x.ndim() == 4 && w.ndim() == 4, op, ": x ", shape_str(x.shape()), " and w ", shape_str(w.shape()),
              " must be 4-D");
    check_same(x, w, op);
    if (b.defined()) check_same(x, b, op);
    cpu::ConvShape s{x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0), w.dim(2), w.dim(3), padding, groups};
    AMS_CHECK(groups > 0 && s.Cin % groups == 0 && s.Cout % groups == 0 && w.dim(1) == s.Cin / groups, op,
              ": weight ", shape_str(w.shape()), " does not fit input ", shape_str(x.shape()), " with groups ", groups);
    AMS_CHECK(!b.defined() || (b.ndim() == 1 && b.dim(0) == s.Cout), op, ": bias ", shape_str(b.shape()), " for ",
              s.Cout, " output channels");
    AMS_CHECK(s.Ho() > 0 && s.Wo() > 0, op, ": input ", shape_str(x.shape()), " too small");
    return s;
}

Tensor conv_fwd(const cpu::ConvShape& s, const Tensor& x, const Tensor& w, const Tensor& b) {
    Tensor y = Tensor::empty({s.B, s.Cout, s.Ho(), s.Wo()}, x.dtype(), x.device());
    AMS_DEVICE_SWITCH(x, cpu::conv2d_forward<T>(s, ptr<T>(x), ptr<T>(w), ptr<T>(b), ptr<T>(y)),
                      cuda::conv2d_forward(s, ptr<T>(x), ptr<T>(w), ptr<T>(b), ptr<T>(y)));
    return y;
}

void conv_bwd(const cpu::ConvShape& s, const Tensor& x, const Tensor& w, const Tensor& dy, const Tensor& dx,
              const Tensor& dw, const Tensor& db) {
    AMS_DEVICE_SWITCH(x, cpu::conv2d_backward<T>(s, ptr<T>(x), ptr<T>(w), ptr<T>(dy), ptr<T>(dx), ptr<T>(dw), ptr<T>(db)),
                      cuda::conv2d_backward(s, ptr<T>(x), ptr<T>(w), ptr<T>(dy), ptr<T>(dx), ptr<T>(dw), ptr<T>(db)));
}

std::pair<Tensor, Tensor> attention_fwd(const Tensor& qkv, const Tensor& temperature, int heads) {
    const int64_t B = qkv.dim(0), C = qkv.dim(1) / 3, N = qkv.dim(2) * qkv.dim(3), c = C / heads;
    Tensor out = Tensor::empty({B, C, qkv.dim(2), qkv.dim(3)}, qkv.dtype(), qkv.device());
    Tensor attn = Tensor::empty({B, heads, c, c}, qkv.dtype(), qkv.device());  // the softmax, saved
    AMS_DEVICE_SWITCH(qkv,
        cpu::attention_forward<T>(ptr<T>(qkv), ptr<T>(temperature), ptr<T>(out), ptr<T>(attn), B, C, N, heads),
        cuda::attention_forward(ptr<T>(qkv), ptr<T>(temperature), ptr<T>(out), ptr<T>(attn), B, C, N, heads));
    return {out, attn};
}

void attention_bwd(const Tensor& qkv, const Tensor& temperature, const Tensor& attn, const Tensor& dout, int heads,
                   const Tensor& dqkv, const Tensor& dtemperature) {
    const int64_t B = qkv.dim(0), C = qkv.dim(1) / 3, N = qkv.dim(2) * qkv.dim(3);
    AMS_DEVICE_SWITCH(qkv,
        cpu::attention_backward<T>(ptr<T>(qkv), ptr<T>(temperature), ptr<T>(attn), ptr<T>(dout), ptr<T>(dqkv), ptr<T>(dtemperature), B, C, N, heads),
        cuda::attention_backward(ptr<T>(qkv), ptr<T>(temperature), ptr<T>(attn), ptr<T>(dout), ptr<T>(dqkv), ptr<T>(dtemperature), B, C, N, heads));
}

Tensor dwconv_gate_fwd(const Tensor& x, const Tensor& w, const Tensor& b) {
    const int64_t B = x.dim(0), C = x.dim(1) / 2, H = x.dim(2), W = x.dim(3);
    Tensor y = Tensor::empty({B, C, H, W}, x.dtype(), x.device());
    AMS_DEVICE_SWITCH(x, cpu::dwconv_gate_forward<T>(ptr<T>(x), ptr<T>(w), ptr<T>(b), ptr<T>(y), B, C, H, W),
                      cuda::dwconv_gate_forward(ptr<T>(x), ptr<T>(w), ptr<T>(b), ptr<T>(y), B, C, H, W));
    return y;
}

void dwconv_gate_bwd(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& dy, const Tensor& dx,
                     const Tensor& dw, const Tensor& db) {
    const int64_t B = x.dim(0), C = x.dim(1) / 2, H = x.dim(2), W = x.dim(3);
    AMS_DEVICE_SWITCH(x,
        cpu::dwconv_gate_backward<T>(ptr<T>(x), ptr<T>(w), ptr<T>(b), ptr<T>(dy), ptr<T>(dx), ptr<T>(dw), ptr<T>(db), B, C, H, W),
        cuda::dwconv_gate_backward(ptr<T>(x), ptr<T>(w), ptr<T>(b), ptr<T>(dy), ptr<T>(dx), ptr<T>(dw), ptr<T>(db), B, C, H, W));
}

}  // namespace ams::detail
