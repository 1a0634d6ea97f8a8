// Chroma smoothing: the last stage of an inference scheme that was calibrated for it.
//
// Camera noise after demosaicing and JPEG is correlated over ~16 pixels in chroma (docs/results.md:
// PolyU's Cb/Cr noise still correlates 0.26 eight pixels apart), wider than a masked predictor can
// average away, while the true chroma of photos is smooth. A Gaussian of the chroma alone removes
// those blotches and leaves luma, where the detail is, to the network.
//
// Colour space: BT.601 YCbCr, full range, without offsets (a linear, exactly invertible map).
// Its strength is not set by hand: calibrate_chroma() picks the sigma that minimises the
// self-supervised fine-tuning objective with the prior split into luma and chroma, on the
// training images (no clean image).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace ams {

// img (N, 3, H, W), any device -> float32 image with Cb and Cr blurred by sigma (a new tensor;
// with sigma 0 or no pixels, the input itself when it already is float32 on the CPU). A float32
// GPU image with sigma > 0 is smoothed on the GPU and stays there (unless the blur's radius,
// ceil(3 sigma), is not below its height and width); anything else comes back on the CPU.
Tensor chroma_smooth(const Tensor& img, double sigma);
// The GPU path, as ops on img's device (F32 or F64, any device; tests run it on the CPU too): the
// colour maps as element-wise ops (not the 1x1 convolution, whose TF32 / bf16 policies would round
// the colours), the blur as a reflect pad by the radius and the row and column passes as depthwise
// convolutions, the taps of gaussian_blur in its order. Needs sigma > 0 and the radius below H and W.
Tensor chroma_smooth_ops(const Tensor& img, double sigma);

// mean |u - noisy| + lambda * (TV(Y) + chroma_weight * (TV(Cb) + TV(Cr))) of (N, 3, H, W) images,
// TV as the fine-tuning loss's (each plane's mean over cells of sqrt(dx^2 + dy^2 + eps)) summed over
// images. (The loss's TV is the mean over the R, G, B planes; for grey content it equals TV(Y).)
double luma_chroma_objective(const Tensor& u, const Tensor& noisy, double lambda, double chroma_weight);

struct ChromaCalibration {
    double sigma = 0;                        // the chosen one
    std::vector<double> sigmas, objective;   // the grid and its objective (mean over crops)
    int crops = 0, crop = 0;                 // crops restored, and the largest side among them
};

// Restores a centre crop (at most `crop` pixels square) of each of up to `max_images` of `files`
// (evenly spaced over the list) with `restore` ((1, 3, h, w) CPU -> restored, any device), and
// returns the sigma of the grid 0, 0.25, ..., 4 that minimises luma_chroma_objective averaged over
// the crops (the smallest of those within rounding of the minimum). A non-finite objective (a
// restoration with NaN) is an error. `progress` (may be empty) hears each crop done.
ChromaCalibration calibrate_chroma(const std::vector<std::string>& files,
                                   const std::function<Tensor(const Tensor&)>& restore, double lambda,
                                   double chroma_weight, int max_images = 32, int crop = 128,
                                   const std::function<void(int, int)>& progress = {});

}  // namespace ams
