// AMSNet's masks: the random masks as tensors, and the fused mask + PD ops that draw them inside
// the pixel-downsampling (one pass from the noisy batch to the masked denoiser input, and from the
// k branch outputs back to the image). Every draw comes from rng::MaskRule, so a fused op hides
// exactly the pixels random_mask / branch_mask would, on either device.
#include "engine/dispatch.h"
#include "engine/ops.h"
#include "engine/rng.h"

namespace ams::ops {

using detail::grad_ptr;
using detail::ptr;

namespace {

// The rule for a (B, 1, h, w) mask with window `win` (defaults filled in and checked).
rng::MaskRule resolve(const Shape& shape, const MaskDraw& m) {
    AMS_CHECK(shape.size() == 4 && shape[1] == 1, "mask shape must be (B, 1, H, W)");
    const MaskWindow& win = m.win;
    rng::Window r{shape[2], shape[3], win.full_h ? win.full_h : shape[2], win.full_w ? win.full_w : shape[3], win.y0,
                  win.x0};
    AMS_CHECK(r.full_h >= 1 && r.full_w >= 1 && r.y0 >= 0 && r.x0 >= 0 && r.y0 < r.full_h && r.x0 < r.full_w,
              "mask window at (", r.y0, ", ", r.x0, ") outside its full size ", r.full_h, "x", r.full_w);
    if (m.k == 0) AMS_CHECK(m.p >= 0 && m.p <= 1, "mask probability must be in [0, 1], got ", m.p);
    else AMS_CHECK(m.k >= 1 && m.branch >= 0 && m.branch < m.k, "mask branch ", m.branch, " of ", m.k);
    // (float)p: the draw is a float with 24 random bits, compared with p rounded to float on both devices.
    return rng::MaskRule{m.seed, m.stream, r, (float)m.p, (uint32_t)m.k, (uint32_t)m.branch};
}

Tensor flags(const Shape& shape, const MaskDraw& m, Device device) {
    const rng::MaskRule rule = resolve(shape, m);
    Tensor t = Tensor::empty(shape, DType::F32, device);
    const int64_t n = t.numel();
    if (device == Device::CPU) {
        float* d = t.data<float>();
        for (int64_t i = 0; i < n; ++i) d[i] = rule.hidden(i) ? 1.f : 0.f;
    } else {
#ifdef AMS_HAVE_CUDA
        cuda::mask_flags(t.data<float>(), n, rule);
#else
        AMS_FAIL("CUDA mask requested but this build has no CUDA support");
#endif
    }
    return t;
}

// Sub-image mask shape of x (B, C, H, W) under stride s.
Shape sub_mask_shape(const Tensor& x, int s) {
    AMS_CHECK(x.ndim() == 4, "expected a 4-D (B, C, H, W) tensor, got ", shape_str(x.shape()));
    AMS_CHECK(s >= 1, "PD stride must be positive, got ", s);
    AMS_CHECK(x.dim(2) % s == 0 && x.dim(3) % s == 0, "masked PD: ", x.dim(2), "x", x.dim(3),
              " not divisible by stride ", s);
    return {x.dim(0) * s * s, 1, x.dim(2) / s, x.dim(3) / s};
}

}  // namespace

Tensor random_mask(const Shape& shape, double p, uint64_t seed, uint64_t stream, Device device, const MaskWindow& win) {
    return flags(shape, MaskDraw{seed, stream, p, 0, 0, win}, device);
}

Tensor branch_mask(const Shape& shape, int k, int branch, uint64_t seed, uint64_t stream, Device device,
                   const MaskWindow& win) {
    AMS_CHECK(k >= 1, "branch_mask: ", k, " branches");
    return flags(shape, MaskDraw{seed, stream, 0, k, branch, win}, device);
}

Tensor masked_pd_down(const Tensor& x_, int s, const MaskDraw& m, Tensor* hidden) {
    const Shape ms = sub_mask_shape(x_, s);
    const rng::MaskRule rule = resolve(ms, m);
    Tensor x = x_.contiguous();
    const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
    Tensor y = Tensor::empty({ms[0], C, ms[2], ms[3]}, x.dtype(), x.device());
    Tensor f = hidden ? Tensor::empty(ms, x.dtype(), x.device()) : Tensor();
    AMS_DEVICE_SWITCH(x, cpu::pd_down_masked<T>(ptr<T>(x), ptr<T>(y), ptr<T>(f), B, C, H, W, s, rule, false, false),
                      cuda::pd_down_masked(ptr<T>(x), ptr<T>(y), ptr<T>(f), B, C, H, W, s, rule, false, false));
    if (hidden) *hidden = f;
    if (autograd::needs_grad({x}))
        autograd::record(y, [x = autograd::handle(x), s, rule, B, C, H, W](const Tensor& g) {
            AMS_DEVICE_SWITCH(g,
                cpu::pd_up_masked<T>(ptr<T>(g), grad_ptr<T>(x), B, C, H / s, W / s, s, rule, false, true),
                cuda::pd_up_masked(ptr<T>(g), grad_ptr<T>(x), B, C, H / s, W / s, s, rule, false, true));
        });
    return y;
}

Tensor pd_stitch(const std::vector<Tensor>& outs_, int s, const MaskDraw& m) {
    const int k = (int)outs_.size();
    AMS_CHECK(k >= 1, "pd_stitch: no branch outputs");
    AMS_CHECK(s >= 1, "PD stride must be positive, got ", s);
    std::vector<Tensor> outs;
    for (const Tensor& o : outs_) {
        AMS_CHECK(o.ndim() == 4 && o.shape() == outs_[0].shape(), "pd_stitch: branch output ", shape_str(o.shape()),
                  " differs from ", shape_str(outs_[0].shape()));
        detail::check_same(o, outs_[0], "pd_stitch");
        outs.push_back(o.contiguous());
    }
    const int64_t Bss = outs[0].dim(0), C = outs[0].dim(1), h = outs[0].dim(2), w = outs[0].dim(3);
    AMS_CHECK(Bss % ((int64_t)s * s) == 0, "pd_stitch: batch ", Bss, " not divisible by stride^2 = ", s * s);
    const int64_t B = Bss / ((int64_t)s * s);
    std::vector<rng::MaskRule> rules;
    for (int b = 0; b < k; ++b) {
        MaskDraw mb = m;
        mb.k = k;
        mb.branch = b;
        rules.push_back(resolve({Bss, 1, h, w}, mb));
    }
    // The k branches partition the pixels, so between them they write every element of y.
    Tensor y = Tensor::empty({B, C, h * s, w * s}, outs[0].dtype(), outs[0].device());
    for (int b = 0; b < k; ++b)
        AMS_DEVICE_SWITCH(y, cpu::pd_up_masked<T>(ptr<T>(outs[b]), ptr<T>(y), B, C, h, w, s, rules[b], true, false),
                          cuda::pd_up_masked(ptr<T>(outs[b]), ptr<T>(y), B, C, h, w, s, rules[b], true, false));
    bool any_grad = false;
    for (const Tensor& o : outs) any_grad = any_grad || autograd::needs_grad({o});
    if (any_grad) {
        std::vector<Tensor> handles;  // the backward writes gradients only: no data kept
        for (const Tensor& o : outs) handles.push_back(autograd::handle(o));
        autograd::record(y, [outs = std::move(handles), rules, s, B, C, h, w](const Tensor& g) {
            for (size_t b = 0; b < outs.size(); ++b) {
                if (!outs[b].requires_grad()) continue;
                const rng::MaskRule& r = rules[b];
                AMS_DEVICE_SWITCH(g,
                    cpu::pd_down_masked<T>(ptr<T>(g), grad_ptr<T>(outs[b]), (T*)nullptr, B, C, h * s, w * s, s, r, true, true),
                    cuda::pd_down_masked(ptr<T>(g), grad_ptr<T>(outs[b]), nullptr, B, C, h * s, w * s, s, r, true, true));
            }
        });
    }
    return y;
}

}  // namespace ams::ops
