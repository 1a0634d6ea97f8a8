// Gaussian blur (separable, reflect borders): the classical baseline the denoiser must beat, and
// the filter of the chroma smoothing (train/chroma.h).
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace ams {

// img (..., H, W), any device and float dtype -> blurred float32 CPU copy, each H x W plane on its
// own; sigma in (0, 1000]; kernel radius ceil(3 sigma), borders mirrored without repeating the edge (numpy's
// "reflect"), again and again when the radius exceeds the image.
Tensor gaussian_blur(const Tensor& img, double sigma);

// The blur's radius, ceil(3 sigma), and its 1-D taps: 2 radius + 1 weights summing to 1; sigma in
// (0, 1000].
int gaussian_radius(double sigma);
std::vector<float> gaussian_kernel(double sigma);

}  // namespace ams
