// Gaussian blur (separable, reflect borders): the classical baseline the denoiser must beat.
#pragma once
#include "engine/tensor.h"

namespace ams {

// img (1, C, H, W) float32 CPU -> blurred copy; kernel radius ceil(3 sigma).
Tensor gaussian_blur(const Tensor& img, double sigma);

}  // namespace ams
