// PSNR and SSIM exactly as the AMSNet reference code computes them (SPEC "Metrics"): images
// clamped to [0, 1], scaled by 255 and rounded to uint8; PSNR over all RGB values; SSIM per channel
// with an 11x11 Gaussian window (sigma 1.5) on the valid region, averaged over channels.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace ams {

// (1, 3, H, W) or (3, H, W) float in [0, 1] (any device) -> (3, H, W) uint8 planes.
std::vector<uint8_t> quantize_u8(const Tensor& img);

double psnr_u8(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b);
double ssim_u8(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, int channels, int64_t H, int64_t W);

struct ImageScore {
    double psnr, ssim;
};
// Both images quantised as above; shapes must match (errors name them).
ImageScore score_images(const Tensor& pred, const Tensor& clean);

}  // namespace ams
