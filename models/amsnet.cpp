#include "models/amsnet.h"

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/rng.h"

namespace ams {

namespace {
// 1 - m for a 0/1 mask (masks are data: no autograd), in `like`'s dtype.
Tensor complement(const Tensor& m) {
    autograd::NoGradGuard ng;
    return ops::add(Tensor::full(m.shape(), 1.0, m.dtype(), m.device()), ops::scale(m, -1.0));
}

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// The mask window of an (H, W) tile at `win`, for masks on its PD sub-images: the whole image is
// padded to a multiple of 8 * pd as an untiled run pads it, and every coordinate divides by pd.
ops::MaskWindow sub_window(int64_t H, int64_t W, int pd, const ImageWindow& win) {
    int64_t fh = win.full_h ? win.full_h : H, fw = win.full_h ? win.full_w : W;
    AMS_CHECK(win.y0 % pd == 0 && win.x0 % pd == 0, "tile origin (", win.y0, ", ", win.x0,
              ") is not a multiple of the PD stride ", pd);
    AMS_CHECK(win.y0 + H <= fh && win.x0 + W <= fw, "tile at (", win.y0, ", ", win.x0, ") of size ", H, "x", W,
              " does not fit the ", fh, "x", fw, " image");
    return {round_up(fh, 8 * pd) / pd, round_up(fw, 8 * pd) / pd, win.y0 / pd, win.x0 / pd};
}
}  // namespace

Tensor amsnet_restore(const Restormer& net, const Tensor& noisy, int pd, int branches, uint64_t seed,
                      uint64_t stream, const ImageWindow& win, const std::function<void()>& after_branch) {
    AMS_CHECK(pd >= 1, "--pd must be at least 1, got ", pd);
    AMS_CHECK(branches >= 2, "--branches must be at least 2, got ", branches);
    const int64_t H = noisy.dim(2), W = noisy.dim(3);
    const ops::MaskWindow mwin = sub_window(H, W, pd, win);
    Tensor x = ops::pad_to_multiple(noisy, 8 * pd);
    ops::MaskDraw m{seed, stream, 0, branches, 0, mwin};
    // Branch b sees the PD sub-images with its hidden pixels zeroed and keeps its output there.
    std::vector<Tensor> outs;
    for (int b = 0; b < branches; ++b) {
        m.branch = b;
        outs.push_back(net.forward(ops::masked_pd_down(x, pd, m)));
        if (after_branch) after_branch();
    }
    return ops::crop(ops::pd_stitch(outs, pd, m), 0, 0, (int)H, (int)W);
}

Tensor average_passes(const Tensor& x, int passes, const std::function<Tensor(const Tensor&, int)>& restore) {
    AMS_CHECK(passes >= 1, "--passes must be at least 1, got ", passes);
    Tensor sum;
    for (int j = 0; j < passes; ++j) {
        const int k = j % 8;
        Tensor r = ops::dihedral(restore(ops::dihedral(x, k), j), ops::dihedral_inverse(k));
        sum = sum.defined() ? ops::add(sum, r) : r;
    }
    return passes > 1 ? ops::scale(sum, 1.0 / passes) : sum;
}

Tensor amsnet_restore_passes(const Restormer& net, const Tensor& noisy, int pd, int branches, int passes,
                             uint64_t seed) {
    return average_passes(noisy, passes, [&](const Tensor& x, int j) {
        return amsnet_restore(net, x, pd, branches, seed, rng::make_stream(rng::kMask, j));
    });
}

Tensor amsnet_r3(const Restormer& net, const Tensor& noisy, const Tensor& denoised, int T, double p,
                 int branches, uint64_t seed, const ImageWindow& win, const std::function<void()>& after_branch) {
    AMS_CHECK(T >= 1, "--r3 must be at least 1, got ", T);
    AMS_CHECK(p >= 0 && p <= 1, "--r3-p must be in [0, 1], got ", p);
    Shape mshape{noisy.dim(0), 1, noisy.dim(2), noisy.dim(3)};
    const ImageWindow w = win.full_h ? win : ImageWindow{noisy.dim(2), noisy.dim(3), 0, 0};
    const ops::MaskWindow rwin{w.full_h, w.full_w, w.y0, w.x0};
    Tensor sum;
    for (int t = 0; t < T; ++t) {
        Tensor replace =
            ops::random_mask(mshape, p, seed, rng::make_stream(rng::kR3Replace, t), noisy.device(), rwin).to(noisy.dtype());
        Tensor mixed = ops::add(ops::mask_mul(denoised, complement(replace)), ops::mask_mul(noisy, replace));
        Tensor r = amsnet_restore(net, mixed, 1, branches, seed, rng::make_stream(rng::kR3Mask, t), w, after_branch);
        sum = sum.defined() ? ops::add(sum, r) : r;
    }
    return ops::scale(sum, 1.0 / T);
}

Tensor amsnet_train_loss(const Restormer& net, const Tensor& batch, int pd, uint64_t seed, uint32_t step,
                         double p_hidden) {
    AMS_CHECK(p_hidden > 0 && p_hidden < 1, "--mask-p must be in (0, 1), got ", p_hidden);
    AMS_CHECK(batch.dim(2) % (8 * pd) == 0 && batch.dim(3) % (8 * pd) == 0, "training crop ", batch.dim(2), "x",
              batch.dim(3), " must be a multiple of 8 * pd = ", 8 * pd);
    Tensor hidden;
    Tensor input = ops::masked_pd_down(batch, pd, {seed, rng::make_stream(rng::kMask, step), p_hidden}, &hidden);
    return ops::masked_l1(net.forward(input), ops::pd_down(batch, pd), hidden);
}

Tensor amsnet_finetune_loss(const Restormer& net, const Tensor& batch, int pd, int branches, double lambda,
                            uint64_t seed, uint32_t step, int passes) {
    // With passes > 1, I_DN is the mean of restorations as denoise computes it, so the prior shapes
    // the averaged output that is shipped.
    Tensor restored = average_passes(batch, passes, [&](const Tensor& x, int j) {
        return amsnet_restore(net, x, pd, branches, seed,
                              rng::make_stream(rng::kMask, step * (uint32_t)passes + (uint32_t)j));
    });
    Tensor loss = ops::l1_loss(restored, batch);
    if (lambda != 0) loss = ops::add(loss, ops::scale(ops::tv_loss(restored), lambda));
    return loss;
}

}  // namespace ams
