// Element-wise and layout ops through the facade: add, scale, concat, reflect pad, crop, dihedral
// flips/transposes, reshape, broadcast mask multiply.
#include "engine/dispatch.h"
#include "engine/ops.h"

namespace ams::ops {

using detail::grad_ptr;
using detail::ptr;

namespace {
// dst += alpha * src on any device.
void add_into(const Tensor& dst, const Tensor& src, double alpha) {
    AMS_DEVICE_SWITCH(dst, cpu::accumulate<T>(ptr<T>(dst), ptr<T>(src), dst.numel(), T(alpha)),
                      cuda::accumulate(ptr<T>(dst), ptr<T>(src), dst.numel(), T(alpha)));
}
}  // namespace

Tensor add(const Tensor& a_, const Tensor& b_) {
    AMS_CHECK(a_.shape() == b_.shape(), "add: shapes ", shape_str(a_.shape()), " and ",
              shape_str(b_.shape()), " differ");
    detail::check_same(a_, b_, "add");
    Tensor a = a_.contiguous(), b = b_.contiguous();
    Tensor y = Tensor::empty(a.shape(), a.dtype(), a.device());
    AMS_DEVICE_SWITCH(a, cpu::axpby<T>(ptr<T>(a), ptr<T>(b), ptr<T>(y), a.numel(), T(1), T(1)),
                      cuda::axpby(ptr<T>(a), ptr<T>(b), ptr<T>(y), a.numel(), 1.f, 1.f));
    if (autograd::needs_grad({a, b}))
        autograd::record(y, [a = autograd::handle(a), b = autograd::handle(b)](const Tensor& g) {
            if (a.requires_grad()) add_into(autograd::grad_buffer(a), g, 1.0);
            if (b.requires_grad()) add_into(autograd::grad_buffer(b), g, 1.0);
        });
    return y;
}

Tensor scale(const Tensor& x_, double alpha) {
    Tensor x = x_.contiguous();
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
    AMS_DEVICE_SWITCH(x, cpu::axpby<T>(ptr<T>(x), ptr<T>(x), ptr<T>(y), x.numel(), T(alpha), T(0)),
                      cuda::axpby(ptr<T>(x), ptr<T>(x), ptr<T>(y), x.numel(), (float)alpha, 0.f));
    if (autograd::needs_grad({x}))
        autograd::record(y, [x = autograd::handle(x), alpha](const Tensor& g) {
            add_into(autograd::grad_buffer(x), g, alpha);
        });
    return y;
}

Tensor concat(const Tensor& a_, const Tensor& b_) {
    AMS_CHECK(a_.ndim() == 4 && b_.ndim() == 4 && a_.dim(0) == b_.dim(0) && a_.dim(2) == b_.dim(2) &&
                  a_.dim(3) == b_.dim(3),
              "concat: ", shape_str(a_.shape()), " and ", shape_str(b_.shape()), " differ outside channels");
    detail::check_same(a_, b_, "concat");
    Tensor a = a_.contiguous(), b = b_.contiguous();
    int64_t B = a.dim(0), Ca = a.dim(1), Cb = b.dim(1), N = a.dim(2) * a.dim(3);
    Tensor y = Tensor::empty({B, Ca + Cb, a.dim(2), a.dim(3)}, a.dtype(), a.device());
    AMS_DEVICE_SWITCH(a, cpu::concat_forward<T>(ptr<T>(a), ptr<T>(b), ptr<T>(y), B, Ca, Cb, N),
                      cuda::concat_forward(ptr<T>(a), ptr<T>(b), ptr<T>(y), B, Ca, Cb, N));
    if (autograd::needs_grad({a, b}))
        autograd::record(y, [a = autograd::handle(a), b = autograd::handle(b), B, Ca, Cb, N](const Tensor& g) {
            AMS_DEVICE_SWITCH(g, cpu::concat_backward<T>(ptr<T>(g), grad_ptr<T>(a), grad_ptr<T>(b), B, Ca, Cb, N),
                              cuda::concat_backward(ptr<T>(g), grad_ptr<T>(a), grad_ptr<T>(b), B, Ca, Cb, N));
        });
    return y;
}

Tensor reflect_pad(const Tensor& x_, int top, int bottom, int left, int right) {
    AMS_CHECK(x_.ndim() == 4, "reflect_pad: expected (B, C, H, W), got ", shape_str(x_.shape()));
    Tensor x = x_.contiguous();
    cpu::PadShape s{x.dim(0) * x.dim(1), x.dim(2), x.dim(3), top, bottom, left, right};
    AMS_CHECK(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "reflect_pad: negative padding");
    AMS_CHECK(top < s.H && bottom < s.H && left < s.W && right < s.W, "reflect_pad: padding (", top, ", ",
              bottom, ", ", left, ", ", right, ") must be smaller than the image ", s.H, "x", s.W);
    if (top == 0 && bottom == 0 && left == 0 && right == 0) return x_;
    Tensor y = Tensor::empty({x.dim(0), x.dim(1), s.Ho(), s.Wo()}, x.dtype(), x.device());
    AMS_DEVICE_SWITCH(x, cpu::reflect_pad_forward<T>(s, ptr<T>(x), ptr<T>(y)),
                      cuda::reflect_pad_forward(s, ptr<T>(x), ptr<T>(y)));
    if (autograd::needs_grad({x}))
        autograd::record(y, [x = autograd::handle(x), s](const Tensor& g) {
            AMS_DEVICE_SWITCH(g, cpu::reflect_pad_backward<T>(s, ptr<T>(g), grad_ptr<T>(x)),
                              cuda::reflect_pad_backward(s, ptr<T>(g), grad_ptr<T>(x)));
        });
    return y;
}

Tensor crop(const Tensor& x_, int top, int left, int h, int w) {
    AMS_CHECK(x_.ndim() == 4, "crop: expected (B, C, H, W), got ", shape_str(x_.shape()));
    Tensor x = x_.contiguous();
    int64_t BC = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3);
    AMS_CHECK(top >= 0 && left >= 0 && h > 0 && w > 0 && top + h <= H && left + w <= W, "crop: window (",
              top, ", ", left, ", ", h, "x", w, ") outside ", H, "x", W);
    if (top == 0 && left == 0 && h == H && w == W) return x_;
    Tensor y = Tensor::empty({x.dim(0), x.dim(1), h, w}, x.dtype(), x.device());
    AMS_DEVICE_SWITCH(x, cpu::crop_forward<T>(ptr<T>(x), ptr<T>(y), BC, H, W, top, left, h, w),
                      cuda::crop_forward(ptr<T>(x), ptr<T>(y), BC, H, W, top, left, h, w));
    if (autograd::needs_grad({x}))
        autograd::record(y, [x = autograd::handle(x), BC, H, W, top, left, h, w](const Tensor& g) {
            AMS_DEVICE_SWITCH(g, cpu::crop_backward<T>(ptr<T>(g), grad_ptr<T>(x), BC, H, W, top, left, h, w),
                              cuda::crop_backward(ptr<T>(g), grad_ptr<T>(x), BC, H, W, top, left, h, w));
        });
    return y;
}

int dihedral_inverse(int k) {
    AMS_CHECK(k >= 0 && k < 8, "dihedral: k must be in [0, 8), got ", k);
    // Flips then transpose: undone by a transpose then the same flips, i.e. with the two flip
    // axes exchanged.
    return (k & 4) ? (4 | ((k & 1) << 1) | ((k & 2) >> 1)) : k;
}

Tensor dihedral(const Tensor& x_, int k) {
    AMS_CHECK(x_.ndim() == 4, "dihedral: expected (B, C, H, W), got ", shape_str(x_.shape()));
    const int inv = dihedral_inverse(k);
    if (k == 0) return x_;
    Tensor x = x_.contiguous();
    const int64_t BC = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3);
    const bool tr = k & 4;
    Tensor y = Tensor::empty({x.dim(0), x.dim(1), tr ? W : H, tr ? H : W}, x.dtype(), x.device());
    AMS_DEVICE_SWITCH(x, cpu::dihedral<T>(ptr<T>(x), ptr<T>(y), BC, H, W, k, false),
                      cuda::dihedral(ptr<T>(x), ptr<T>(y), BC, H, W, k, false));
    if (autograd::needs_grad({x}))
        autograd::record(y, [x = autograd::handle(x), BC, H, W, tr, inv](const Tensor& g) {
            const int64_t gh = tr ? W : H, gw = tr ? H : W;
            AMS_DEVICE_SWITCH(g, cpu::dihedral<T>(ptr<T>(g), grad_ptr<T>(x), BC, gh, gw, inv, true),
                              cuda::dihedral(ptr<T>(g), grad_ptr<T>(x), BC, gh, gw, inv, true));
        });
    return y;
}

Tensor pad_to_multiple(const Tensor& x, int multiple) {
    AMS_CHECK(x.ndim() == 4 && multiple >= 1, "pad_to_multiple: expected (B, C, H, W) and a positive multiple");
    int64_t H = x.dim(2), W = x.dim(3);
    int pb = (int)((multiple - H % multiple) % multiple), pr = (int)((multiple - W % multiple) % multiple);
    AMS_CHECK(pb < H && pr < W, "image ", W, "x", H, " is too small: it is padded by reflection to a multiple of ",
              multiple, ", which needs at least ", multiple / 2 + 1, " pixels each way (the multiple is 8 x the PD "
              "stride in the AMSNet scheme: a smaller --pd takes smaller images)");
    return reflect_pad(x, 0, pb, 0, pr);
}

Tensor reshape(const Tensor& x_, const Shape& shape) {
    Tensor x = x_.contiguous();
    Tensor y = x.reshape(shape);  // shares storage; the view itself carries no autograd state
    if (autograd::needs_grad({x}))
        autograd::record(y, [x = autograd::handle(x)](const Tensor& g) {
            add_into(autograd::grad_buffer(x), g.reshape(x.shape()), 1.0);
        });
    return y;
}

Tensor mask_mul(const Tensor& x_, const Tensor& m_) {
    AMS_CHECK(x_.ndim() == 4 && m_.ndim() == 4 && m_.dim(1) == 1 && m_.dim(0) == x_.dim(0) &&
                  m_.dim(2) == x_.dim(2) && m_.dim(3) == x_.dim(3),
              "mask_mul: mask ", shape_str(m_.shape()), " does not fit ", shape_str(x_.shape()));
    detail::check_same(x_, m_, "mask_mul");
    Tensor x = x_.contiguous(), m = m_.contiguous();
    int64_t B = x.dim(0), C = x.dim(1), N = x.dim(2) * x.dim(3);
    Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
    AMS_DEVICE_SWITCH(x, cpu::mask_mul<T>(ptr<T>(x), ptr<T>(m), ptr<T>(y), B, C, N, false),
                      cuda::mask_mul(ptr<T>(x), ptr<T>(m), ptr<T>(y), B, C, N, false));
    if (autograd::needs_grad({x}))
        autograd::record(y, [x = autograd::handle(x), m, B, C, N](const Tensor& g) {
            AMS_DEVICE_SWITCH(g, cpu::mask_mul<T>(ptr<T>(g), ptr<T>(m), grad_ptr<T>(x), B, C, N, true),
                              cuda::mask_mul(ptr<T>(g), ptr<T>(m), grad_ptr<T>(x), B, C, N, true));
        });
    return y;
}

}  // namespace ams::ops
