// Denoising one image with a trained network: the AMSNet scheme (k complementary mask branches on
// PD sub-images, optional flips/transposes and R^3) or the plain network, tiled when the image does
// not fit in memory. Used by `amsnet denoise`, `eval --weights`, bench, and validation in training.
#pragma once
#include <cstdint>
#include <string>

#include "models/restormer.h"
#include "models/tiling.h"

namespace ams {

struct DenoiseOptions {
    std::string scheme = "amsnet";
    int pd = 2, branches = 2, passes = 1, r3 = 0;
    double r3_p = 0.16;
    double chroma_sigma = 0;  // chroma smoothing after restoration (train/chroma.h); 0 = off
    uint64_t seed = 0;
    int64_t tile = -1;       // core size in pixels; -1 auto (only when the image does not fit), 0 never
    int64_t overlap = 32;    // context around each tile
    double max_memory = 0;   // bytes for auto tiling; 0 = what the device has free
    bool verbose = true;     // the tile line and, on a terminal, progress on stderr
    mutable double bytes_per_pixel = 0;  // measured on first use (probe_bytes_per_pixel)
    std::string summary() const;
};

// The core size auto tiling gives an H x W image whose run must fit in `budget` bytes: 0 (the
// whole image) when it fits, else the largest tile that does (measures the network's bytes per
// pixel on first use). Throws when not even the smallest tile fits.
int64_t auto_tile(const Restormer& net, int64_t H, int64_t W, const DenoiseOptions& o, double budget);
// The tiles for one image: --tile N as given, or (auto) the whole image when its estimated
// memory fits the budget, else the largest tile that does.
TileGrid plan_denoise(const Restormer& net, const Tensor& noisy, const DenoiseOptions& o);
// noisy (1, 3, H, W) on the model's device -> denoised, same shape and device; no autograd. Tiles
// per plan_denoise (a line on stderr says so when it tiles and verbose); chroma smoothing last, on the CPU.
Tensor denoise_image(const Restormer& net, const Tensor& noisy, const DenoiseOptions& o);

}  // namespace ams
