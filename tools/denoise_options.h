// The inference options shared by `denoise` and `eval --weights`.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "models/restormer.h"
#include "models/tiling.h"
#include "tools/args.h"

namespace ams::cli {

struct DenoiseOptions {
    std::string scheme = "amsnet";
    int pd = 2, branches = 2, passes = 1, r3 = 0;
    double r3_p = 0.16;
    double chroma_sigma = 0;  // chroma smoothing after restoration (train/chroma.h); 0 = off
    uint64_t seed = 0;
    int64_t tile = -1;       // core size in pixels; -1 auto (only when the image does not fit), 0 never
    int64_t overlap = 32;    // context around each tile
    double max_memory = 0;   // bytes for auto tiling; 0 = what the device has free
    mutable double bytes_per_pixel = 0;  // measured on first use (probe_bytes_per_pixel)
    std::string summary() const;
};

void add_denoise_options(Args& a);
// Options not given on the command line fall back to the model's stored inference scheme
// (metadata inference_pd / inference_branches / inference_passes, written by amsnet train, and
// inference_chroma_sigma, written by finetune --chroma-weight or --calibrate-only), else SPEC's 2 / 2.
// Sets dst from an integer entry of the weights metadata (e.g. "inference_pd") when present; a
// malformed or too-small value is an error naming the key.
void stored_int(const std::map<std::string, std::string>& meta, const char* key, int& dst, int min);
// The same for a number (e.g. "inference_chroma_sigma") in [min, max].
void stored_number(const std::map<std::string, std::string>& meta, const char* key, double& dst, double min,
                   double max);

DenoiseOptions read_denoise_options(const Args& a, const std::map<std::string, std::string>& model_metadata);
// The tiles for one image: --tile N as given, or (auto) the whole image when its estimated
// memory fits the budget, else the largest tile that does.
TileGrid plan_denoise(const Restormer& net, const Tensor& noisy, const DenoiseOptions& o);
// noisy (1, 3, H, W) on the model's device -> denoised, same shape and device; no autograd. Tiles
// per plan_denoise (a line on stderr says so when it tiles); chroma smoothing last, on the CPU.
Tensor denoise_image(const Restormer& net, const Tensor& noisy, const DenoiseOptions& o);

}  // namespace ams::cli
