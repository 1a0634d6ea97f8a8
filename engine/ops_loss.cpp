// Scalar-valued ops (dot, masked L1, L1, total variation). On the GPU the
// scalar and its incoming gradient stay on the device; on the CPU the gradient is read directly.
#include "engine/dispatch.h"
#include "engine/ops.h"

namespace ams::ops {

using detail::grad_ptr;
using detail::ptr;

namespace {
// A 0-dim result on x's device holding `v` (CPU path).
Tensor scalar_like(const Tensor& x, double v) {
    Tensor s = Tensor::empty({}, x.dtype(), x.device());
    if (x.device() == Device::CPU) s.fill_(v);
    return s;
}
}  // namespace

Tensor dot(const Tensor& a_, const Tensor& b_) {
    AMS_CHECK(a_.numel() == b_.numel(), "dot: ", shape_str(a_.shape()), " and ", shape_str(b_.shape()));
    detail::check_same(a_, b_, "dot");
    Tensor a = a_.contiguous(), b = b_.contiguous();
    Tensor y = scalar_like(a, 0);
    AMS_DEVICE_SWITCH(a, y.fill_(cpu::dot<T>(ptr<T>(a), ptr<T>(b), a.numel())),
                      cuda::dot(ptr<T>(a), ptr<T>(b), a.numel(), ptr<T>(y)));
    if (autograd::needs_grad({a, b}))
        autograd::record(y, [a, b](const Tensor& g) {
            AMS_DEVICE_SWITCH(g,
                {
                    T gv = (T)g.item();
                    if (a.requires_grad()) cpu::accumulate<T>(grad_ptr<T>(a), ptr<T>(b), a.numel(), gv);
                    if (b.requires_grad()) cpu::accumulate<T>(grad_ptr<T>(b), ptr<T>(a), a.numel(), gv);
                },
                {
                    if (a.requires_grad()) cuda::accumulate_scaled(grad_ptr<T>(a), ptr<T>(b), a.numel(), ptr<T>(g), 1.f);
                    if (b.requires_grad()) cuda::accumulate_scaled(grad_ptr<T>(b), ptr<T>(a), a.numel(), ptr<T>(g), 1.f);
                });
        });
    return y;
}

Tensor masked_l1(const Tensor& pred_, const Tensor& target_, const Tensor& mask_) {
    AMS_CHECK(pred_.shape() == target_.shape(), "masked_l1: pred ", shape_str(pred_.shape()), " vs target ",
              shape_str(target_.shape()));
    AMS_CHECK(pred_.ndim() == 4 && mask_.ndim() == 4 && mask_.dim(1) == 1 && mask_.dim(0) == pred_.dim(0) &&
                  mask_.dim(2) == pred_.dim(2) && mask_.dim(3) == pred_.dim(3),
              "masked_l1: mask ", shape_str(mask_.shape()), " does not fit ", shape_str(pred_.shape()));
    detail::check_same(pred_, target_, "masked_l1");
    detail::check_same(pred_, mask_, "masked_l1");
    Tensor p = pred_.contiguous(), t = target_.contiguous(), m = mask_.contiguous();
    int64_t B = p.dim(0), C = p.dim(1), N = p.dim(2) * p.dim(3);
    Tensor y = scalar_like(p, 0);
    // The hidden count, counted once: on the CPU a number, on the GPU two device doubles (count,
    // sum) that stay there for the backward.
    double hidden = 0;
    Tensor stats = p.is_cuda() ? Tensor::empty({2}, DType::F64, p.device()) : Tensor();
    AMS_DEVICE_SWITCH(p, y.fill_(cpu::masked_l1_forward<T>(ptr<T>(p), ptr<T>(t), ptr<T>(m), B, C, N, &hidden)),
                      cuda::masked_l1_forward(ptr<T>(p), ptr<T>(t), ptr<T>(m), ptr<T>(y), B, C, N, ptr<double>(stats)));
    if (autograd::needs_grad({p}))
        autograd::record(y, [p, t, m, B, C, N, hidden, stats](const Tensor& g) {
            AMS_DEVICE_SWITCH(g,
                cpu::masked_l1_backward<T>(ptr<T>(p), ptr<T>(t), ptr<T>(m), grad_ptr<T>(p), B, C, N, hidden, g.item()),
                cuda::masked_l1_backward(ptr<T>(p), ptr<T>(t), ptr<T>(m), grad_ptr<T>(p), B, C, N, ptr<double>(stats),
                                         ptr<T>(g)));
        });
    return y;
}

Tensor l1_loss(const Tensor& a_, const Tensor& b_) {
    AMS_CHECK(a_.shape() == b_.shape(), "l1_loss: ", shape_str(a_.shape()), " vs ", shape_str(b_.shape()));
    detail::check_same(a_, b_, "l1_loss");
    Tensor a = a_.contiguous(), b = b_.contiguous();
    int64_t n = a.numel();
    Tensor y = scalar_like(a, 0);
    AMS_DEVICE_SWITCH(a, y.fill_(cpu::l1_forward<T>(ptr<T>(a), ptr<T>(b), n)),
                      cuda::l1_forward(ptr<T>(a), ptr<T>(b), n, ptr<T>(y)));
    if (autograd::needs_grad({a, b}))
        autograd::record(y, [a, b, n](const Tensor& g) {
            AMS_DEVICE_SWITCH(g, cpu::l1_backward<T>(ptr<T>(a), ptr<T>(b), grad_ptr<T>(a), grad_ptr<T>(b), n, g.item()),
                              cuda::l1_backward(ptr<T>(a), ptr<T>(b), grad_ptr<T>(a), grad_ptr<T>(b), n, ptr<T>(g)));
        });
    return y;
}

Tensor tv_loss(const Tensor& x_) {
    AMS_CHECK(x_.ndim() == 4, "tv_loss: expected (B, C, H, W), got ", shape_str(x_.shape()));
    Tensor x = x_.contiguous();
    int64_t BC = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3);
    Tensor y = scalar_like(x, 0);
    AMS_DEVICE_SWITCH(x, y.fill_(cpu::tv_forward<T>(ptr<T>(x), BC, H, W)),
                      cuda::tv_forward(ptr<T>(x), BC, H, W, ptr<T>(y)));
    if (autograd::needs_grad({x}))
        autograd::record(y, [x, BC, H, W](const Tensor& g) {
            AMS_DEVICE_SWITCH(g, cpu::tv_backward<T>(ptr<T>(x), grad_ptr<T>(x), BC, H, W, g.item()),
                              cuda::tv_backward(ptr<T>(x), grad_ptr<T>(x), BC, H, W, ptr<T>(g)));
        });
    return y;
}

}  // namespace ams::ops
