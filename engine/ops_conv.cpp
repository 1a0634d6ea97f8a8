// conv2d, pixel (un)shuffle and pixel-downsampling through the facade.
#include "engine/dispatch.h"
#include "engine/kernel_calls.h"
#include "engine/ops.h"

namespace ams::ops {

using detail::grad_ptr;
using detail::ptr;

Tensor conv2d(const Tensor& x_, const Tensor& w_, const Tensor& b_, int padding, int groups) {
    const cpu::ConvShape s = detail::conv_shape("conv2d", x_, w_, b_, padding, groups);
    Tensor x = x_.contiguous(), w = w_.contiguous(), b = b_.defined() ? b_.contiguous() : Tensor();
    Tensor y = detail::conv_fwd(s, x, w, b);
    if (autograd::needs_grad({x, w, b})) {
        autograd::record(y, [sx = autograd::Saved(x), w, b, s](const Tensor& g) {
            const Tensor x = sx.get();
            detail::conv_bwd(s, x, w, g, detail::grad_or_none(x), detail::grad_or_none(w), detail::grad_or_none(b));
        });
    }
    return y;
}

namespace {
// The four permutations: each one's backward is its inverse, accumulating.
enum class Perm { Unshuffle, Shuffle, PdDown, PdUp };

Perm inverse(Perm k) {
    switch (k) {
        case Perm::Unshuffle: return Perm::Shuffle;
        case Perm::Shuffle: return Perm::Unshuffle;
        case Perm::PdDown: return Perm::PdUp;
        case Perm::PdUp: return Perm::PdDown;
    }
    return k;
}

// dst = k(src) (or += when acc). pd_up's kernel takes the image count and sub-image size.
void apply(Perm k, const Tensor& src, const Tensor& dst, int r, bool acc) {
    int64_t B = src.dim(0), C = src.dim(1), H = src.dim(2), W = src.dim(3);
    if (k == Perm::PdUp) B = dst.dim(0);
    AMS_DEVICE_SWITCH(src,
        {
            switch (k) {
                case Perm::Unshuffle: cpu::pixel_unshuffle<T>(ptr<T>(src), ptr<T>(dst), B, C, H, W, r, acc); break;
                case Perm::Shuffle: cpu::pixel_shuffle<T>(ptr<T>(src), ptr<T>(dst), B, C, H, W, r, acc); break;
                case Perm::PdDown: cpu::pd_down<T>(ptr<T>(src), ptr<T>(dst), B, C, H, W, r, acc); break;
                case Perm::PdUp: cpu::pd_up<T>(ptr<T>(src), ptr<T>(dst), B, C, H, W, r, acc); break;
            }
        },
        {
            switch (k) {
                case Perm::Unshuffle: cuda::pixel_unshuffle(ptr<T>(src), ptr<T>(dst), B, C, H, W, r, acc); break;
                case Perm::Shuffle: cuda::pixel_shuffle(ptr<T>(src), ptr<T>(dst), B, C, H, W, r, acc); break;
                case Perm::PdDown: cuda::pd_down(ptr<T>(src), ptr<T>(dst), B, C, H, W, r, acc); break;
                case Perm::PdUp: cuda::pd_up(ptr<T>(src), ptr<T>(dst), B, C, H, W, r, acc); break;
            }
        });
}

Tensor permute_op(const Tensor& x_, int r, Perm kind) {
    AMS_CHECK(x_.ndim() == 4, "expected a 4-D (B, C, H, W) tensor, got ", shape_str(x_.shape()));
    AMS_CHECK(r >= 1, "stride/factor must be positive, got ", r);
    Tensor x = x_.contiguous();
    int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), rr = (int64_t)r * r;
    Shape out;
    switch (kind) {
        case Perm::Unshuffle:
            AMS_CHECK(H % r == 0 && W % r == 0, "pixel_unshuffle: ", H, "x", W, " not divisible by ", r);
            out = {B, C * rr, H / r, W / r};
            break;
        case Perm::Shuffle:
            AMS_CHECK(C % rr == 0, "pixel_shuffle: ", C, " channels not divisible by ", rr);
            out = {B, C / rr, H * r, W * r};
            break;
        case Perm::PdDown:
            AMS_CHECK(H % r == 0 && W % r == 0, "pd_down: ", H, "x", W, " not divisible by stride ", r);
            out = {B * rr, C, H / r, W / r};
            break;
        case Perm::PdUp:
            AMS_CHECK(B % rr == 0, "pd_up: batch ", B, " not divisible by stride^2 = ", rr);
            out = {B / rr, C, H * r, W * r};
            break;
    }
    Tensor y = Tensor::empty(out, x.dtype(), x.device());
    apply(kind, x, y, r, false);
    if (autograd::needs_grad({x}))
        autograd::record(y, [x = autograd::handle(x), r, kind](const Tensor& g) {
            apply(inverse(kind), g, autograd::grad_buffer(x), r, true);
        });
    return y;
}
}  // namespace

Tensor pixel_unshuffle(const Tensor& x, int r) { return permute_op(x, r, Perm::Unshuffle); }
Tensor pixel_shuffle(const Tensor& x, int r) { return permute_op(x, r, Perm::Shuffle); }
Tensor pd_down(const Tensor& x, int s) { return permute_op(x, s, Perm::PdDown); }
Tensor pd_up(const Tensor& x, int s) { return permute_op(x, s, Perm::PdUp); }

}  // namespace ams::ops
