// AMSNet (Liao et al., ECCV 2024) around a denoiser (Restormer): pixel-downsampling, masks, the
// k-branch inference, the training and fine-tuning losses and R^3 refinement, per ../shared/SPEC.md.
// Every random draw comes from the counter-based generator keyed by (seed, purpose, step), so CPU
// and GPU runs with the same seed hide the same pixels.
#pragma once
#include <cstdint>
#include <functional>

#include "engine/tensor.h"
#include "models/restormer.h"

namespace ams {

// Where an image tile lies in the whole image (tiled inference): its top-left corner (multiples
// of the PD stride) and the whole image's size. Masks are drawn as for the whole image, so a tile
// hides exactly the pixels the untiled run hides. The default is the image itself.
struct ImageWindow {
    int64_t full_h = 0, full_w = 0, y0 = 0, x0 = 0;  // full_h = 0: the tensor is the whole image
};

// k-branch masked inference (SPEC Eqs. 6-8): PD with stride s (1 = none), per branch hide that
// branch's pixels, denoise, keep the output at the hidden pixels; sum; inverse PD. Any image size
// (padded so sub-images are multiples of 8, cropped back). Autograd flows through every branch
// when enabled (fine-tuning). `stream` keys the masks.
// after_branch (may be empty) is called after each branch's network run: progress for a photo
// that takes minutes.
Tensor amsnet_restore(const Restormer& net, const Tensor& noisy, int pd, int branches, uint64_t seed,
                      uint64_t stream, const ImageWindow& win = {}, const std::function<void()>& after_branch = {});

// The self-ensemble of `denoise --passes` and `finetune --passes`: the mean over pass j < passes of
// restore(dihedral(x, j % 8), j) transformed back. Pass j sees the image flipped/transposed its own
// way and restore() gives it its own masks; a pixel's prediction varies with both, the mean less.
Tensor average_passes(const Tensor& x, int passes, const std::function<Tensor(const Tensor&, int)>& restore);

// The untiled restoration `denoise` computes: average_passes of amsnet_restore with the masks of
// pass j keyed by stream (kMask, j). Validation and the chroma calibration use it.
Tensor amsnet_restore_passes(const Restormer& net, const Tensor& noisy, int pd, int branches, int passes,
                             uint64_t seed);

// R^3 (AP-BSN's random replacement refinement, per pixel as AMSNet): T copies of `denoised` with a
// fraction p of pixels replaced by `noisy`, each restored at full resolution (no PD) with fresh
// complementary masks, averaged. after_branch: as amsnet_restore's (T x branches calls).
Tensor amsnet_r3(const Restormer& net, const Tensor& noisy, const Tensor& denoised, int T, double p,
                 int branches, uint64_t seed, const ImageWindow& win = {},
                 const std::function<void()>& after_branch = {});

// AMSNet-B training loss (SPEC Eq. 4): PD stride s, one mask (each sub-image pixel hidden with
// probability p_hidden, 0.5 in SPEC, shared over channels), masked L1 on the hidden pixels.
// batch (B, C, H, W) with H, W multiples of 8*s. `step` keys the mask.
Tensor amsnet_train_loss(const Restormer& net, const Tensor& batch, int pd, uint64_t seed, uint32_t step,
                         double p_hidden = 0.5);

// AMSNet-P fine-tuning loss (SPEC Eqs. 9-10): I_DN = amsnet_restore(batch) with gradients through
// all branches; loss = || I_DN - I_N ||_1 + lambda * TV(I_DN). With passes > 1, I_DN is the mean of
// that many restorations, each with fresh masks and the next flip/transpose (as denoise --passes).
Tensor amsnet_finetune_loss(const Restormer& net, const Tensor& batch, int pd, int branches, double lambda,
                            uint64_t seed, uint32_t step, int passes = 1);

}  // namespace ams
